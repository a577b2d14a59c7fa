/**
 * `npm run bench -- dashboard` (issue 14, acceptance 4): the dashboard's JSON endpoints on a cache
 * of 100 000 paths (--quick: 20 000): the caches listing, the cache's stats, its newest page, a
 * page deep down the cursor chain, a search that matches and one that matches nothing (the worst
 * case: it walks the whole cache), and one path. Reference, in the same run and server:
 * /<cache>/nix-cache-info, the cheapest request that loads and authorises a cache.
 *
 * The paths are written straight into the server's SQLite file (one transaction; a quarter of them
 * share a NAR with another path, so the stored figure differs from the logical one), with the
 * server running, as pushes would leave them. Sequential requests over loopback; p50/p99 of 100 each. Each path refers
 * to the one pushed before it within groups of 200, so a closure has up to 200 paths.
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { createCache, main, mintToken, parseFlags, printTable, section, startGarret, writeSummary, type SummaryRow } from "./common.ts";

const flags = parseFlags();
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

function fill(dbPath: string, cacheName: string, n: number): void {
  const db = new Database(dbPath);
  db.exec("PRAGMA busy_timeout = 10000");
  const cache = db.query("SELECT id FROM caches WHERE name = ?").get(cacheName) as { id: number };
  const now = Math.floor(Date.now() / 1000);
  const nar = db.query(`INSERT INTO nars (nar_hash, nar_size, num_chunks, file_size, compression, state, created_at)
    VALUES (?, ?, 1, ?, 'zstd', 'valid', ?)`);
  const obj = db.query(`INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, created_by, created_at, last_accessed_at)
    VALUES (?, ?, ?, ?, ?, 'bench', ?, ?)`);
  db.transaction(() => {
    let lastNar = 0;
    for (let i = 0; i < n; i++) {
      const t = now - Math.floor(((n - i) / n) * 90 * 86400);
      const size = 1000 + ((i * 7919) % 500_000);
      if (i % 4 !== 3 || lastNar === 0) {
        lastNar = Number(nar.run(Bun.hash(`nar-${i}`).toString(16).padStart(64, "0").slice(0, 64), size, Math.floor(size / 2), t).lastInsertRowid);
      }
      const hash = hashOf(i);
      const refs = i % 200 !== 0 ? JSON.stringify([`${hashOf(i - 1)}-pkg-${i - 1}`]) : "[]";
      obj.run(cache.id, hash, `/nix/store/${hash}-pkg-${i}`, lastNar, refs, t, t);
    }
  })();
  db.close();
}

/**
 * Warm: the database did not change since the last request (SQLite's store keeps whole-cache
 * answers until it does). Cold: a write by another connection lands before every request, as
 * during pushes, so each one runs its queries.
 */
async function measure(url: string, token: string, path: string, coldWrite?: () => void): Promise<{ p50: number; p99: number }> {
  const headers = { authorization: `Bearer ${token}` };
  for (let i = 0; i < 5; i++) await (await fetch(`${url}${path}`, { headers })).arrayBuffer();
  const ms: number[] = [];
  for (let i = 0; i < (coldWrite ? COLD_REQUESTS : REQUESTS); i++) {
    coldWrite?.();
    const t = performance.now();
    const res = await fetch(`${url}${path}`, { headers });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(ms.length * 0.5)]!, p99: ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]! };
}

await main(async () => {
  section(`dashboard: JSON endpoints on a cache of ${PATHS} paths (scripts/bench/dashboard.ts)`);
  const g = await startGarret();
  const token = mintToken(g.dataDir);
  await createCache(g.url, token, "big");
  await createCache(g.url, token, "small");
  const t = performance.now();
  fill(join(g.dataDir, "garret.db"), "big", PATHS);
  console.log(`  filled ${PATHS} paths in ${((performance.now() - t) / 1000).toFixed(1)} s`);
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
    ["search, no match (whole cache)", `/_api/v1/caches/big/paths?q=nothing-like-this&limit=50`],
    ["one path (refs, referrers, closure)", `/_api/v1/caches/big/paths/${hashOf(Math.floor(PATHS / 2))}`],
  ];
  const ref = await measure(g.url, token, "/big/nix-cache-info");
  const writer = new Database(join(g.dataDir, "garret.db"));
  writer.exec("PRAGMA busy_timeout = 10000");
  const touch = writer.query("UPDATE caches SET priority = 81 - priority WHERE name = 'small'");
  const cold = (): void => void touch.run();
  const rows: string[][] = [];
  const summary: SummaryRow[] = [];
  for (const [name, path] of cases) {
    const r = await measure(g.url, token, path);
    const c = await measure(g.url, token, path, cold);
    rows.push([name, r.p50.toFixed(2), r.p99.toFixed(2), c.p50.toFixed(2), c.p99.toFixed(2), ref.p50.toFixed(2), ref.p99.toFixed(2)]);
    summary.push({
      bench: "dashboard", metric: `${name}: p99 ms`, garret: r.p99.toFixed(2), reference: ref.p99.toFixed(2),
      ratio: `${(r.p99 / ref.p99).toFixed(1)}x`, goal: `< ${GOAL_MS} ms`, ok: r.p99 < GOAL_MS,
    }, {
      bench: "dashboard", metric: `${name}, cold: p99 ms`, garret: c.p99.toFixed(2), reference: ref.p99.toFixed(2),
      ratio: `${(c.p99 / ref.p99).toFixed(1)}x`, goal: `< ${GOAL_MS} ms`, ok: c.p99 < GOAL_MS,
    });
  }
  printTable(`Latency over loopback, ${REQUESTS} sequential requests each (ms)`,
    ["request", "warm p50", "warm p99", "cold p50", "cold p99", "nix-cache-info p50", "nix-cache-info p99"], rows,
    [`${PATHS} paths in one cache; goal p99 < ${GOAL_MS} ms. Cold: another connection wrote just before each of ${COLD_REQUESTS} requests.`], "lrrrrrr");
  writer.close();
  writeSummary(flags, summary);
  await g.stop();
});
