import { encodeBase32 } from "../../src/nix/base32.ts";
import { garretCmd } from "../helpers/server.ts";
import { run } from "../helpers/nix.ts";
import { openDb } from "../helpers/api.ts";
import { PG_CACHE_RECORD_MS } from "../../src/db/postgres.ts";

export type { GcReport } from "../../src/gc/collect.ts";
import type { GcReport } from "../../src/gc/collect.ts";

/** Runs `garret gc --data DIR --json [args]` and returns its report. */
export function runGc(dataDir: string, args: string[] = [], env: Record<string, string> = {}): GcReport {
  const r = run(garretCmd("gc", "--data", dataDir, "--json", ...args), { env: { GARRET_GC_GRACE: "0", ...env } });
  if (r.code !== 0) throw new Error(`garret gc failed (${r.code}): ${r.stderr}${r.stdout}`);
  seenByServers();
  return JSON.parse(r.stdout) as GcReport;
}

/**
 * After a command that changed the database in a process of its own (gc, fsck): on PostgreSQL a
 * running server sees another process's changes within PG_CACHE_RECORD_MS (the documented bound
 * of its kept answers, src/db/postgres.ts); SQLite's server sees them at once.
 */
export function seenByServers(): void {
  if (process.env.GARRET_TEST_DATABASE_URL) Bun.sleepSync(PG_CACHE_RECORD_MS + 50);
}

/** Environment for servers under test: no periodic GC unless asked, accesses flushed quickly. */
export const GC_TEST_ENV = { GARRET_GC_INTERVAL: "0", GARRET_ACCESS_FLUSH_INTERVAL: "0.2", GARRET_GC_GRACE: "0" };

export function randomStorePath(name: string): string {
  return `/nix/store/${encodeBase32(crypto.getRandomValues(new Uint8Array(20)))}-${name}`;
}

export const sha256Hex = (b: Uint8Array): string => new Bun.CryptoHasher("sha256").update(b).digest("hex");

/** Uploads a NAR held in memory under any store path (it need not exist locally). */
export function uploadNar(
  url: string, token: string, cache: string, storePath: string, nar: Uint8Array, references: string[] = [],
  body: Uint8Array | ReadableStream<Uint8Array> = nar,
): Promise<Response> {
  return fetch(`${url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: {
      authorization: `Bearer ${token}`,
      "x-attic-nar-info": JSON.stringify({
        cache, store_path_hash: storePath.split("/").pop()!.slice(0, 32), store_path: storePath, references,
        nar_hash: `sha256:${sha256Hex(nar)}`, nar_size: nar.length,
      }),
    },
    body,
  });
}

export function count(dataDir: string, sql: string, ...params: (string | number)[]): number {
  const db = openDb(dataDir);
  try {
    return (db.query(sql).get(...params) as { n: number }).n;
  } finally {
    db.close();
  }
}

export async function narinfoStatus(url: string, token: string, cache: string, path: string): Promise<number> {
  const res = await fetch(`${url}/${cache}/${path.split("/").pop()!.slice(0, 32)}.narinfo`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}
