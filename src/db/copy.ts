import { Database } from "bun:sqlite";
import { SQL } from "bun";
import { SqliteMetaStore } from "./sqlite.ts";
import { PostgresMetaStore } from "./postgres.ts";
import { parseDatabaseUrl } from "./open.ts";

/** A copy that cannot start (target not empty, wrong engines): one line for the CLI. */
export class CopyRefused extends Error {}

/** Tables in the order their foreign keys need; tables added later follow, by name. */
const ORDER = ["caches", "packs", "chunks", "nars", "nar_chunks", "objects", "pins"];
/** Not state to move: uploads in flight, the SQLite collector lock, the schema version (set by the migrations). */
const SKIP = new Set(["upload_leases", "gc_lock", "schema_version"]);
const BATCH = 2000;

export interface CopyReport { tables: Record<string, number> }

/**
 * Moves an installation's metadata from SQLite to PostgreSQL, ids and all (the bytes stay where
 * they are: same data dir or bucket, nothing re-pushed). Both sides are first brought to the
 * current schema; the target must hold no cache, pack, chunk, NAR or object. The copy is one
 * PostgreSQL transaction: a failure leaves the target as empty as it was.
 */
export async function copyDatabase(from: string, to: string, log: (line: string) => void = () => {}): Promise<CopyReport> {
  const src = parseDatabaseUrl(from);
  const dst = parseDatabaseUrl(to);
  if (src.engine !== "sqlite") throw new CopyRefused("--from must be a sqlite:// database");
  if (dst.engine !== "postgres") throw new CopyRefused("--to must be a postgres:// database");
  new SqliteMetaStore(src.path).close(); // brings the source to the current schema
  (await PostgresMetaStore.open(dst.url, 2)).close();
  const db = new Database(src.path, { readonly: true });
  const pg = new SQL({ url: dst.url, max: 1 });
  const tables: Record<string, number> = {};
  const names = (db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[])
    .map((r) => r.name).filter((n) => !SKIP.has(n));
  const TABLES = [...ORDER.filter((t) => names.includes(t)), ...names.filter((t) => !ORDER.includes(t)).sort()];
  try {
    await pg.begin(async (tx) => {
      for (const t of TABLES) {
        const n = Number(((await tx.unsafe(`SELECT COUNT(*) AS n FROM ${t}`)) as { n: string }[])[0]!.n);
        if (n > 0) throw new CopyRefused(`the target database is not empty (${t} has ${n} row(s)); copy into an empty database`);
      }
      for (const t of TABLES) {
        const srcCols = (db.query(`PRAGMA table_info(${t})`).all() as { name: string }[]).map((c) => c.name);
        const dstCols = new Set(((await tx.unsafe("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1", [t])) as { column_name: string }[]).map((c) => c.column_name));
        const cols = srcCols.filter((c) => dstCols.has(c));
        const missing = [...dstCols].filter((c) => !srcCols.includes(c));
        if (missing.length > 0) log(`db copy: ${t}: ${missing.join(", ")} not in the source, left to their defaults`);
        let copied = 0;
        let batch: unknown[][] = [];
        const flush = async () => {
          if (batch.length === 0) return;
          const params: unknown[] = [];
          const rows = batch.map((row) => `(${row.map((v) => {
            params.push(v);
            return `$${params.length}`;
          }).join(", ")})`);
          await tx.unsafe(`INSERT INTO ${t} (${cols.join(", ")}) VALUES ${rows.join(", ")}`, params);
          copied += batch.length;
          batch = [];
        };
        // Streamed, a batch per statement: memory stays bounded whatever the size.
        for (const row of db.query(`SELECT ${cols.join(", ")} FROM ${t}`).iterate() as IterableIterator<Record<string, unknown>>) {
          batch.push(cols.map((c) => row[c]));
          if (batch.length * cols.length >= BATCH * 8 || batch.length >= BATCH) await flush();
        }
        await flush();
        tables[t] = copied;
        // Identity columns continue after the copied ids (and after ids SQLite handed out and deleted).
        // Tables keyed by a text id (tokens: the jti) have no sequence to move.
        const [serial] = dstCols.has("id") ? await tx.unsafe(`SELECT pg_get_serial_sequence('${t}', 'id') AS seq`) : [];
        if (serial?.seq) {
          const seq = (db.query("SELECT seq FROM sqlite_sequence WHERE name = ?").get(t) as { seq: number } | null)?.seq ?? 0;
          await tx.unsafe(`SELECT setval('${serial.seq}', GREATEST($1::bigint, (SELECT COALESCE(MAX(id), 0) FROM ${t}), 1))`, [seq]);
        }
        log(`db copy: ${t}: ${copied} row(s)`);
      }
      // Lease ids must stay above every id the source issued (the collector compares them).
      const leaseSeq = (db.query("SELECT seq FROM sqlite_sequence WHERE name = 'upload_leases'").get() as { seq: number } | null)?.seq ?? 0;
      if (leaseSeq > 0) await tx.unsafe("SELECT setval(pg_get_serial_sequence('upload_leases', 'id'), $1::bigint)", [leaseSeq]);
    });
  } finally {
    db.close();
    await pg.close();
  }
  return { tables };
}
