/**
 * Engine-neutral, synchronous read access to a test server's metadata, for checks that must not
 * trust the API. The suite's engine follows GARRET_TEST_DATABASE_URL (see test/helpers/pg.ts):
 * on SQLite it is the data dir's garret.db; on PostgreSQL each data dir gets its own fresh
 * database (created on first use), and queries go through `psql` so tests stay synchronous.
 * Tests write SQL both engines accept; `?` placeholders are filled in as literals.
 */
import { Database } from "bun:sqlite";
import { join, resolve } from "node:path";
import { pgBin } from "./pg.ts";
import { tempDir } from "./nix.ts";
import { openMetaStore } from "../../src/db/open.ts";
import { PostgresMetaStore } from "../../src/db/postgres.ts";
import type { MetaStore } from "../../src/db/types.ts";

export interface TestDb {
  query(sql: string): { get(...params: unknown[]): unknown; all(...params: unknown[]): unknown[]; run(...params: unknown[]): void };
  close(): void;
}

const pgDatabases = new Map<string, string>();
let counter = 0;

/** The PostgreSQL URL of a data dir's database when the suite runs on PostgreSQL, else null. */
export function pgUrlFor(dir: string): string | null {
  const dataDir = resolve(dir);
  const admin = process.env.GARRET_TEST_DATABASE_URL;
  if (!admin) return null;
  let url = pgDatabases.get(dataDir);
  if (!url) {
    const name = `garret_d${process.pid}_${Date.now().toString(36)}_${counter++}`;
    psql(admin, `CREATE DATABASE ${name}`);
    const u = new URL(admin);
    u.pathname = `/${name}`;
    url = u.toString();
    pgDatabases.set(dataDir, url);
  }
  return url;
}

function psql(url: string, sql: string): string {
  const p = Bun.spawnSync([join(pgBin(), "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], {
    stdout: "pipe", stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(`psql: ${p.stderr.toString().trim()}\n${sql}`);
  return p.stdout.toString();
}

function literal(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (typeof v === "boolean") return v ? "1" : "0";
  return `'${String(v).replaceAll("'", "''")}'`;
}

/** `?` placeholders as literals; camelCase aliases quoted (PostgreSQL folds unquoted names to lower case). */
function toPg(sql: string, params: unknown[]): string {
  let i = 0;
  return sql.replace(/\?/g, () => literal(params[i++])).replace(/\bAS\s+([a-z]+[A-Z]\w*)\b/g, 'AS "$1"');
}

class PgTestDb implements TestDb {
  constructor(private readonly url: string) {}

  query(sql: string) {
    const all = (...params: unknown[]): unknown[] => {
      // SQLite's file check has no PostgreSQL counterpart: the server keeps its own files consistent.
      if (/^\s*PRAGMA integrity_check\s*$/i.test(sql)) return [{ integrity_check: "ok" }];
      const out = psql(this.url, `SELECT COALESCE(json_agg(t), '[]') FROM (${toPg(sql, params)}) t`).trim();
      return JSON.parse(out) as unknown[];
    };
    return {
      all,
      get: (...params: unknown[]) => all(...params)[0] ?? null,
      run: (...params: unknown[]) => void psql(this.url, toPg(sql, params)),
    };
  }

  close(): void {}
}

/** Opens a data dir's metadata for reading, on the suite's engine. */
export function openDb(dataDir: string): TestDb {
  const url = pgUrlFor(dataDir);
  if (url) return new PgTestDb(url);
  return new Database(join(dataDir, "garret.db"), { readonly: true }) as unknown as TestDb;
}

/** A metadata store of its own on the suite's engine (a fresh database), and read access to it. */
export async function openTestMetaStore(): Promise<{ meta: MetaStore; db(): TestDb; close(): Promise<void> }> {
  const dir = tempDir("garret-meta-");
  const url = pgUrlFor(dir) ?? `sqlite://${join(dir, "garret.db")}`;
  const meta = await openMetaStore(url, { poolSize: 4 });
  return {
    meta,
    db: () => openDb(dir),
    close: async () => {
      if (meta instanceof PostgresMetaStore) await meta.end();
      else meta.close();
    },
  };
}
