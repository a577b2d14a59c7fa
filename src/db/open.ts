import { resolve } from "node:path";
import { SqliteMetaStore } from "./sqlite.ts";
import { DatabaseUnavailable, PostgresMetaStore } from "./postgres.ts";
import type { MetaStore } from "./types.ts";

export { DatabaseUnavailable };

export type DatabaseUrl = { engine: "sqlite"; path: string } | { engine: "postgres"; url: string };

/**
 * `sqlite:///abs/path/garret.db` (or `sqlite://relative/path`), `postgres://…` / `postgresql://…`.
 * Anything else is a DatabaseUnavailable naming the URL's problem in one line.
 */
export function parseDatabaseUrl(url: string): DatabaseUrl {
  if (url.startsWith("sqlite://")) {
    const path = decodeURIComponent(url.slice("sqlite://".length));
    if (path === "" || path === "/") throw new DatabaseUnavailable(`database url ${JSON.stringify(url)}: no file path (sqlite:///path/to/garret.db)`);
    return { engine: "sqlite", path: resolve(path) };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new DatabaseUnavailable("database url: not a valid postgres:// URL");
    }
    if (!u.hostname) throw new DatabaseUnavailable("database url: postgres:// URL without a host");
    return { engine: "postgres", url };
  }
  throw new DatabaseUnavailable(`database url: must start with sqlite:// or postgres://, got ${JSON.stringify(url.replace(/:[^:@/]*@/, ":***@"))}`);
}

/** The one factory of metadata stores: the engine follows the URL. */
export async function openMetaStore(url: string, opts: { poolSize?: number } = {}): Promise<MetaStore> {
  const parsed = parseDatabaseUrl(url);
  if (parsed.engine === "sqlite") return new SqliteMetaStore(parsed.path);
  return await PostgresMetaStore.open(parsed.url, opts.poolSize);
}

export const sqliteUrl = (path: string): string => `sqlite://${resolve(path)}`;
