/**
 * `npm run bench -- dashboard` (issue 14, acceptance 4): the dashboard's JSON endpoints on a cache
 * of 100 000 paths (--quick: 20 000): the caches listing, the cache's stats, its newest page, a
 * page deep down the cursor chain, a search that matches and one that matches nothing (the worst
 * case: it walks the whole cache), and one path. Reference, in the same run and server:
 * /<cache>/nix-cache-info, the cheapest request that loads and authorises a cache.
 *
 * Both engines, one after the other: SQLite, then PostgreSQL ($GARRET_BENCH_DATABASE_URL, a server
 * where the bench may CREATE DATABASE, else a throwaway cluster like the tests'; --sqlite-only skips it).
 *
 * The paths are written straight into the server's database (one transaction; a quarter of them
 * share a NAR with another path), with the server running, and the dashboard's counters rebuilt
 * from them (REBUILD_COUNTERS, OBJECT_REFS_BACKFILL), as pushes would leave them. Sequential requests over loopback;
 * p50/p99 of 100 each (cold: 30). Each path refers to the one pushed before it within groups of
 * 200, so a closure has up to 200 paths.
 */
import { SQL } from "bun";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { createCache, main, mintToken, parseFlags, printTable, section, startGarret, writeSummary, type SummaryRow } from "./common.ts";
import { REBUILD_COUNTERS } from "../../src/db/dashboard-sql.ts";
import { OBJECT_REFS_BACKFILL } from "../../src/db/object-refs.ts";
import { freshPgDatabase } from "../../test/helpers/pg.ts";

const SQLITE_ONLY = process.argv.includes("--sqlite-only");
const flags = parseFlags(process.argv.slice(2).filter((a) => a !== "--sqlite-only"));
const PATHS = flags.quick ? 20_000 : 100_000;
const REQUESTS = 100;
const COLD_REQUESTS = 30;
const GOAL_MS = 50;
const B32 = "0123456789abcdfghijklmnpqrsvwxyz";

function hashOf(i: number): string {
  let s = "";
  let x = i * 2654435761 + 12345;
  for (let k = 0; k < 32; k++) {
    s += B32[(x >>> 0) % 32];
    x = Math.imul(x ^ (x >>> 13), 1103515245) + k + i;
  }
  return s;
}

interface Row { nar: [string, number, number, number] | null; obj: [string, string, string, number] }

/** The paths in push order: a new NAR for three in four (null: reuse the previous one), and the object. */
function* rows(n: number): Generator<Row> {
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < n; i++) {
    const t = now - Math.floor(((n - i) / n) * 90 * 86400);
    const size = 1000 + ((i * 7919) % 500_000);
    const nar: Row["nar"] = i % 4 !== 3 || i === 0
      ? [Bun.hash(`nar-${i}`).toString(16).padStart(64, "0").slice(0, 64), size, Math.floor(size / 2), t] : null;
    const hash = hashOf(i);
    const refs = i % 200 !== 0 ? JSON.stringify([`${hashOf(i - 1)}-pkg-${i - 1}`]) : "[]";
    yield { nar, obj: [hash, `/nix/store/${hash}-pkg-${i}`, refs, t] };
  }
}

function fillSqlite(dbPath: string, cacheName: string, n: number): void {
  const db = new Database(dbPath);
  db.exec("PRAGMA busy_timeout = 10000");
  const cache = db.query("SELECT id FROM caches WHERE name = ?").get(cacheName) as { id: number };
  const nar = db.query(`INSERT INTO nars (nar_hash, nar_size, num_chunks, file_size, compression, state, created_at)
    VALUES (?, ?, 1, ?, 'zstd', 'valid', ?)`);
  const obj = db.query(`INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, created_by, created_at, last_accessed_at)
    VALUES (?, ?, ?, ?, ?, 'bench', ?, ?)`);
  db.transaction(() => {
    let lastNar = 0;
    for (const r of rows(n)) {
      if (r.nar) lastNar = Number(nar.run(...r.nar).lastInsertRowid);
      const [hash, path, refs, t] = r.obj;
      obj.run(cache.id, hash, path, lastNar, refs, t, t);
    }
    for (const sql of REBUILD_COUNTERS) db.exec(sql);
    db.exec(OBJECT_REFS_BACKFILL.sqlite);
  })();
  db.close();
}

async function fillPostgres(url: string, cacheName: string, n: number): Promise<void> {
  const sql = new SQL({ url, max: 1 });
  const cache = Number(((await sql.unsafe("SELECT id FROM caches WHERE name = $1", [cacheName])) as { id: string }[])[0]!.id);
  await sql.begin(async (tx) => {
    const all = [...rows(n)];
    const nars = all.filter((r) => r.nar).map((r) => r.nar!);
    for (let i = 0; i < nars.length; i += 10_000) {
      const b = nars.slice(i, i + 10_000);
      await tx.unsafe(`INSERT INTO nars (nar_hash, nar_size, num_chunks, file_size, compression, state, created_at)
        SELECT h, s, 1, f, 'zstd', 'valid', t FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS v(h, s, f, t)`,
      [b.map((x) => x[0]), b.map((x) => x[1]), b.map((x) => x[2]), b.map((x) => x[3])]);
    }
    const ids = new Map(((await tx.unsafe("SELECT id, nar_hash FROM nars")) as { id: string; nar_hash: string }[]).map((r) => [r.nar_hash, Number(r.id)]));
    let lastNar = 0;
    const narOf = all.map((r) => (r.nar ? (lastNar = ids.get(r.nar[0])!) : lastNar));
    for (let i = 0; i < all.length; i += 10_000) {
      const b = all.slice(i, i + 10_000).map((r) => r.obj);
      await tx.unsafe(`INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, created_by, created_at, last_accessed_at)
        SELECT $1, h, p, n, r, 'bench', t, t FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[]) AS v(h, p, n, r, t)`,
      [cache, b.map((x) => x[0]), b.map((x) => x[1]), narOf.slice(i, i + 10_000), b.map((x) => x[2]), b.map((x) => x[3])]);
    }
    for (const q of REBUILD_COUNTERS) await tx.unsafe(q);
    await tx.unsafe(OBJECT_REFS_BACKFILL.postgresql);
  });
  await sql.unsafe("ANALYZE");
  await sql.close();
}

/**
 * Warm: the database did not change since the last request (SQLite's store keeps whole-cache
 * answers until it does). Cold: a write by another connection lands before every request, as
 * during pushes, so each one runs its queries.
 */
async function measure(url: string, token: string, path: string, coldWrite?: () => Promise<void>): Promise<{ p50: number; p99: number }> {
  const headers = { authorization: `Bearer ${token}` };
  for (let i = 0; i < 5; i++) await (await fetch(`${url}${path}`, { headers })).arrayBuffer();
  const ms: number[] = [];
  for (let i = 0; i < (coldWrite ? COLD_REQUESTS : REQUESTS); i++) {
    await coldWrite?.();
    const t = performance.now();
    const res = await fetch(`${url}${path}`, { headers });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(ms.length * 0.5)]!, p99: ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]! };
}

interface Engine {
  name: string;
  /** Extra environment of the server and the token command (the database URL). */
  env: Record<string, string>;
  fill(dataDir: string): Promise<void>;
  /** A write by another connection, before each cold request. */
  writer(dataDir: string): Promise<{ touch(): Promise<void>; close(): Promise<void> }>;
}

const TOUCH = "UPDATE caches SET priority = 81 - priority WHERE name = 'small'";

const sqlite: Engine = {
  name: "SQLite", env: {},
  fill: async (dataDir) => fillSqlite(join(dataDir, "garret.db"), "big", PATHS),
  async writer(dataDir) {
    const db = new Database(join(dataDir, "garret.db"));
    db.exec("PRAGMA busy_timeout = 10000");
    const touch = db.query(TOUCH);
    return { touch: async () => void touch.run(), close: async () => db.close() };
  },
};

async function postgres(): Promise<Engine> {
  const url = await freshPgDatabase(process.env.GARRET_BENCH_DATABASE_URL);
  return {
    name: "PostgreSQL", env: { GARRET_DATABASE_URL: url },
    fill: () => fillPostgres(url, "big", PATHS),
    async writer() {
      const sql = new SQL({ url, max: 1 });
      return { touch: async () => void await sql.unsafe(TOUCH), close: () => sql.close() };
    },
  };
}

async function benchEngine(engine: Engine): Promise<SummaryRow[]> {
  Object.assign(process.env, engine.env);
  const g = await startGarret();
  const token = mintToken(g.dataDir);
  await createCache(g.url, token, "big");
  await createCache(g.url, token, "small");
  const t = performance.now();
  await engine.fill(g.dataDir);
  console.log(`  ${engine.name}: filled ${PATHS} paths in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const first = await (await fetch(`${g.url}/_api/v1/caches/big/paths?limit=50`, { headers: { authorization: `Bearer ${token}` } })).json() as { next_cursor: string };
  // A cursor 40 pages deep.
  let cursor = first.next_cursor;
  for (let i = 0; i < 40; i++) {
    const page = await (await fetch(`${g.url}/_api/v1/caches/big/paths?limit=50&cursor=${cursor}`, { headers: { authorization: `Bearer ${token}` } })).json() as { next_cursor: string };
    cursor = page.next_cursor;
  }
  const cases: [string, string][] = [
    ["caches listing (2 caches)", "/_api/v1/caches"],
    ["cache stats", "/_api/v1/caches/big/stats"],
    ["newest 50 paths", "/_api/v1/caches/big/paths?limit=50"],
    ["50 paths, 40 pages deep", `/_api/v1/caches/big/paths?limit=50&cursor=${cursor}`],
    ["search, matches", `/_api/v1/caches/big/paths?q=pkg-99&limit=50`],
    ["search, no match", `/_api/v1/caches/big/paths?q=nothing-like-this&limit=50`],
    ["one path (refs, referrers, closure)", `/_api/v1/caches/big/paths/${hashOf(Math.floor(PATHS / 2))}`],
  ];
  const ref = await measure(g.url, token, "/big/nix-cache-info");
  const writer = await engine.writer(g.dataDir);
  const rows: string[][] = [];
  const summary: SummaryRow[] = [];
  for (const [name, path] of cases) {
    const r = await measure(g.url, token, path);
    const c = await measure(g.url, token, path, writer.touch);
    rows.push([name, r.p50.toFixed(2), r.p99.toFixed(2), c.p50.toFixed(2), c.p99.toFixed(2), ref.p50.toFixed(2), ref.p99.toFixed(2)]);
    summary.push({
      bench: "dashboard", metric: `${engine.name}: ${name}: p99 ms`, garret: r.p99.toFixed(2), reference: ref.p99.toFixed(2),
      ratio: `${(r.p99 / ref.p99).toFixed(1)}x`, goal: `< ${GOAL_MS} ms`, ok: r.p99 < GOAL_MS,
    }, {
      bench: "dashboard", metric: `${engine.name}: ${name}, cold: p99 ms`, garret: c.p99.toFixed(2), reference: ref.p99.toFixed(2),
      ratio: `${(c.p99 / ref.p99).toFixed(1)}x`, goal: `< ${GOAL_MS} ms`, ok: c.p99 < GOAL_MS,
    });
  }
  printTable(`${engine.name}: latency over loopback, ${REQUESTS} sequential requests each (ms)`,
    ["request", "warm p50", "warm p99", "cold p50", "cold p99", "nix-cache-info p50", "nix-cache-info p99"], rows,
    [`${PATHS} paths in one cache; goal p99 < ${GOAL_MS} ms. Cold: another connection wrote just before each of ${COLD_REQUESTS} requests.`], "lrrrrrr");
  await writer.close();
  await g.stop();
  for (const k of Object.keys(engine.env)) delete process.env[k];
  return summary;
}

await main(async () => {
  section(`dashboard: JSON endpoints on a cache of ${PATHS} paths (scripts/bench/dashboard.ts)`);
  const summary = await benchEngine(sqlite);
  if (!SQLITE_ONLY) summary.push(...await benchEngine(await postgres()));
  writeSummary(flags, summary);
});
