/**
 * Replicas benchmark (issue 13): 32 pullers (narinfo + NAR) and 8 pushers against two replicas on
 * one PostgreSQL database (requests alternate between them; they share one storage dir), and the
 * same load against one server on SQLite, side by side: errors (goal 0), narinfo p50/p99 (goal
 * p99 < 50 ms), NAR bytes/s, uploads/s. Then get-missing-paths of 10 000 hashes over 1 000 000
 * stored objects on each engine (goal <= 100 ms, median of 5). Loopback only.
 *
 *   bun scripts/bench/replicas.ts [--quick] [--part load|missing]
 *     (load 60 s per setup; --quick: 10 s, 100 000 objects; --part runs only the load or only get-missing-paths)
 *
 * PostgreSQL: $GARRET_BENCH_DATABASE_URL (a server where the bench may CREATE DATABASE), else a
 * throwaway cluster like the tests' (test/helpers/pg.ts).
 */
import { SQL } from "bun";
import { Database } from "bun:sqlite";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, fileNar, REPO, main, note, parseFlags, printTable, randomStoreHash, registerStoppable, section, tempDir, writeSummary, type SummaryRow } from "./common.ts";
import { freshPgDatabase } from "../../test/helpers/pg.ts";

// --part is this bench's own flag; the rest are the common ones.
const argv = process.argv.slice(2);
const partAt = argv.indexOf("--part");
const PART = partAt >= 0 ? argv.splice(partAt, 2)[1] : "all";
if (!["all", "load", "missing"].includes(PART ?? "")) throw new Error("--part: load or missing");
const flags = parseFlags(argv);
const runLoad = PART !== "missing";
const runMissing = PART !== "load";
const LOAD_SECONDS = flags.quick ? 10 : 60;
const OBJECTS = flags.quick ? 100_000 : 1_000_000;
const PULLERS = 32;
const PUSHERS = 8;
const NARS = 64;

interface Server { url: string; dataDir: string; stop(): Promise<void> }

async function startServer(dataDir: string, env: Record<string, string>, args: string[]): Promise<Server> {
  const logPath = join(tempDir("garret-bench-log-"), "server.log");
  const cmd = process.env.GARRET_BIN ? [process.env.GARRET_BIN] : [BUN, join(REPO, "src/main.ts")];
  const proc = Bun.spawn([...cmd, "serve", "--listen", "127.0.0.1:0", "--data", dataDir, ...args], {
    stdout: Bun.file(logPath), stderr: Bun.file(logPath), env: { ...process.env, GARRET_GC_INTERVAL: "0", ...env },
  });
  const deadline = Date.now() + 20000;
  for (;;) {
    const log = existsSync(logPath) ? readFileSync(logPath, "utf8") : "";
    const m = /listening on (http:\/\/\S+)/.exec(log);
    if (m) {
      const s = { url: m[1]!, dataDir, stop: async () => { proc.kill(); await proc.exited; } };
      registerStoppable(s);
      return s;
    }
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start:\n${log}`);
    await Bun.sleep(20);
  }
}

function token(dataDir: string, databaseUrl?: string): string {
  const cmd = process.env.GARRET_BIN ? [process.env.GARRET_BIN] : [BUN, join(REPO, "src/main.ts")];
  const r = Bun.spawnSync([...cmd, "token", "create", "--data", dataDir, "--sub", "bench", "--validity", "1d",
    "--pull", "*", "--push", "*", "--create-cache", "*", ...(databaseUrl ? ["--database-url", databaseUrl] : [])], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return r.stdout.toString().trim();
}

const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

async function upload(url: string, tok: string, cache: string, hash: string, nar: Uint8Array): Promise<number> {
  const res = await fetch(`${url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: {
      authorization: `Bearer ${tok}`,
      "x-attic-nar-info": JSON.stringify({ cache, store_path_hash: hash, store_path: `/nix/store/${hash}-bench`, references: [],
        nar_hash: `sha256:${sha256(nar)}`, nar_size: nar.length }),
    },
    body: nar,
  });
  await res.arrayBuffer();
  return res.status;
}

interface LoadResult { errors: number; p50: number; p99: number; narBytesPerSec: number; uploadsPerSec: number; requests: number }

async function load(urls: string[], tok: string): Promise<LoadResult> {
  const auth = { authorization: `Bearer ${tok}` };
  await fetch(`${urls[0]}/_api/v1/cache-config/bench`, {
    method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ is_public: false, priority: 41, store_dir: "/nix/store", upstream_cache_key_names: [], keypair: "Generate" }),
  });
  const paths: string[] = [];
  for (let i = 0; i < NARS; i++) {
    const h = randomStoreHash();
    if (await upload(urls[i % urls.length]!, tok, "bench", h, fileNar(crypto.getRandomValues(new Uint8Array(16 * 1024 + i * 2048))))!== 200) throw new Error("seeding failed");
    paths.push(h);
  }
  let errors = 0;
  let narBytes = 0;
  let uploads = 0;
  let requests = 0;
  const latencies: number[] = [];
  const end = performance.now() + LOAD_SECONDS * 1000;
  let turn = 0;
  const next = () => urls[turn++ % urls.length]!;
  const puller = async () => {
    while (performance.now() < end) {
      const h = paths[Math.floor(Math.random() * paths.length)]!;
      const base = next();
      const t = performance.now();
      const res = await fetch(`${base}/bench/${h}.narinfo`, { headers: auth });
      const text = await res.text();
      latencies.push(performance.now() - t);
      requests++;
      if (res.status !== 200) { errors++; continue; }
      const narUrl = /^URL: (.*)$/m.exec(text)![1]!;
      const nar = await fetch(`${next()}/bench/${narUrl}`, { headers: auth });
      const body = await nar.arrayBuffer();
      requests++;
      if (nar.status !== 200) errors++;
      else narBytes += body.byteLength;
    }
  };
  const pusher = async () => {
    while (performance.now() < end) {
      const status = await upload(next(), tok, "bench", randomStoreHash(), fileNar(crypto.getRandomValues(new Uint8Array(32 * 1024))));
      requests++;
      if (status !== 200) errors++;
      else uploads++;
    }
  };
  const t0 = performance.now();
  await Promise.all([...Array.from({ length: PULLERS }, puller), ...Array.from({ length: PUSHERS }, pusher)]);
  const secs = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { errors, p50: q(0.5), p99: q(0.99), narBytesPerSec: narBytes / secs, uploadsPerSec: uploads / secs, requests };
}

/** Fills the cache "many" (hashes: n in hex, spelled in Nix's base32 alphabet, which has no e) with `OBJECTS` objects (one shared NAR) directly in the database. */
async function fill(engine: "sqlite" | "postgres", where: string, cacheId: number): Promise<void> {
  if (engine === "postgres") {
    const sql = new SQL(where);
    await sql.unsafe(`INSERT INTO nars (nar_hash, nar_size, num_chunks, file_size, compression, created_at) VALUES ('bench-shared', 1, 0, 0, 'none', 1)`);
    await sql.unsafe(`INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, created_at, last_accessed_at)
      SELECT ${cacheId}, replace(replace(lpad(to_hex(g), 32, '0'), 'f', 'g'), 'e', 'f'), '/nix/store/' || replace(replace(lpad(to_hex(g), 32, '0'), 'f', 'g'), 'e', 'f') || '-x', (SELECT id FROM nars WHERE nar_hash = 'bench-shared'), '[]', 1, 1
      FROM generate_series(1, ${OBJECTS}) g`);
    await sql.unsafe("ANALYZE objects");
    await sql.close();
  } else {
    const db = new Database(where);
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec(`INSERT INTO nars (nar_hash, nar_size, num_chunks, file_size, compression, created_at) VALUES ('bench-shared', 1, 0, 0, 'none', 1)`);
    db.exec(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${OBJECTS})
      INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, created_at, last_accessed_at)
      SELECT ${cacheId}, replace(replace(printf('%032x', n), 'f', 'g'), 'e', 'f'), '/nix/store/' || replace(replace(printf('%032x', n), 'f', 'g'), 'e', 'f') || '-x', (SELECT id FROM nars WHERE nar_hash = 'bench-shared'), '[]', 1, 1 FROM g`);
    db.close();
  }
}

/** The first call (it writes the 5 000 present paths' access times) and the median of the next 5 (accesses then fresh). */
async function missingPathsMs(url: string, tok: string): Promise<{ first: number; median: number }> {
  const hashes = Array.from({ length: 10_000 }, (_, i) => (i % 2 === 0 ? (i * 7 + 1).toString(16).padStart(32, "0").replaceAll("f", "g").replaceAll("e", "f") : randomStoreHash()));
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t = performance.now();
    const res = await fetch(`${url}/_api/v1/get-missing-paths`, {
      method: "POST", headers: { authorization: `Bearer ${tok}`, "content-type": "application/json" },
      body: JSON.stringify({ cache: "many", store_path_hashes: hashes }),
    });
    const body = (await res.json()) as { missing_paths: string[] };
    if (res.status !== 200 || body.missing_paths.length !== 5000) throw new Error(`get-missing-paths: ${res.status} ${body.missing_paths?.length}`);
    times.push(performance.now() - t);
  }
  const first = times.shift()!;
  times.sort((a, b) => a - b);
  return { first, median: times[Math.floor(times.length / 2)]! };
}

async function cacheId(url: string, tok: string, name: string, where: { engine: "sqlite" | "postgres"; at: string }): Promise<number> {
  await fetch(`${url}/_api/v1/cache-config/${name}`, {
    method: "POST", headers: { authorization: `Bearer ${tok}`, "content-type": "application/json" },
    body: JSON.stringify({ is_public: false, priority: 41, store_dir: "/nix/store", upstream_cache_key_names: [], keypair: "Generate" }),
  });
  if (where.engine === "postgres") {
    const sql = new SQL(where.at);
    const id = Number(((await sql.unsafe(`SELECT id FROM caches WHERE name = '${name}'`)) as { id: string }[])[0]!.id);
    await sql.close();
    return id;
  }
  const db = new Database(where.at, { readonly: true });
  const id = (db.query("SELECT id FROM caches WHERE name = ?").get(name) as { id: number }).id;
  db.close();
  return id;
}

await main(async () => {
  section(`replicas: ${PULLERS} pullers + ${PUSHERS} pushers for ${LOAD_SECONDS} s; get-missing-paths over ${OBJECTS} objects`);
  const none: LoadResult = { errors: 0, p50: NaN, p99: NaN, narBytesPerSec: NaN, uploadsPerSec: NaN, requests: 0 };
  // One SQLite server.
  const sqliteDir = tempDir("garret-bench-sqlite-");
  const single = await startServer(sqliteDir, {}, []);
  const sqliteTok = token(sqliteDir);
  const sqliteLoad = runLoad ? await load([single.url], sqliteTok) : none;
  const sqliteDb = join(sqliteDir, "garret.db");
  let sqliteMissing = { first: NaN, median: NaN };
  if (runMissing) {
    await fill("sqlite", sqliteDb, await cacheId(single.url, sqliteTok, "many", { engine: "sqlite", at: sqliteDb }));
    sqliteMissing = await missingPathsMs(single.url, sqliteTok);
  }
  await single.stop();

  // Two replicas on one PostgreSQL database, sharing a storage dir.
  const dbUrl = await freshPgDatabase(process.env.GARRET_BENCH_DATABASE_URL);
  const storage = tempDir("garret-bench-storage-");
  const aDir = tempDir("garret-bench-a-");
  const env = { GARRET_STORAGE_PATH: storage };
  const a = await startServer(aDir, env, ["--database-url", dbUrl]);
  const bDir = tempDir("garret-bench-b-");
  await Bun.write(join(bDir, "token-secret"), Bun.file(join(aDir, "token-secret")));
  Bun.spawnSync(["chmod", "600", join(bDir, "token-secret")]);
  const b = await startServer(bDir, env, ["--database-url", dbUrl]);
  const pgTok = token(aDir, dbUrl);
  const pgLoad = runLoad ? await load([a.url, b.url], pgTok) : none;
  let pgMissing = { first: NaN, median: NaN };
  if (runMissing) {
    await fill("postgres", dbUrl, await cacheId(a.url, pgTok, "many", { engine: "postgres", at: dbUrl }));
    pgMissing = await missingPathsMs(b.url, pgTok);
  }
  await a.stop();
  await b.stop();

  const f = (n: number, d = 1) => n.toFixed(d);
  const rows: SummaryRow[] = [];
  if (runLoad) {
    printTable("load", ["", "1 server, SQLite", "2 replicas, PostgreSQL", "goal"], [
      ["requests", String(sqliteLoad.requests), String(pgLoad.requests), ""],
      ["errors", String(sqliteLoad.errors), String(pgLoad.errors), "0"],
      ["narinfo p50", `${f(sqliteLoad.p50, 2)} ms`, `${f(pgLoad.p50, 2)} ms`, ""],
      ["narinfo p99", `${f(sqliteLoad.p99, 2)} ms`, `${f(pgLoad.p99, 2)} ms`, "< 50 ms"],
      ["NAR bytes/s", `${f(sqliteLoad.narBytesPerSec / 2 ** 20)} MiB/s`, `${f(pgLoad.narBytesPerSec / 2 ** 20)} MiB/s`, ""],
      ["uploads/s", f(sqliteLoad.uploadsPerSec), f(pgLoad.uploadsPerSec), ""],
    ], ["client, servers and PostgreSQL share this machine's CPUs; the replicas share one storage dir"]);
    rows.push(
      { bench: "replicas", metric: "errors under load (2 replicas PG / 1 SQLite)", garret: String(pgLoad.errors), reference: String(sqliteLoad.errors), ratio: "-", goal: "0", ok: pgLoad.errors === 0 && sqliteLoad.errors === 0 },
      { bench: "replicas", metric: "narinfo p99 ms (2 replicas PG vs 1 SQLite)", garret: f(pgLoad.p99, 2), reference: f(sqliteLoad.p99, 2), ratio: "-", goal: "< 50", ok: pgLoad.p99 < 50 },
      { bench: "replicas", metric: "uploads/s (2 replicas PG vs 1 SQLite)", garret: f(pgLoad.uploadsPerSec), reference: f(sqliteLoad.uploadsPerSec), ratio: "-", goal: "-", ok: null },
    );
  }
  if (runMissing) {
    printTable(`get-missing-paths, 10 000 hashes (half present) over ${OBJECTS} objects`, ["engine", "first call (writes 5 000 access times)", "median of the next 5", "goal"], [
      ["SQLite", `${f(sqliteMissing.first)} ms`, `${f(sqliteMissing.median)} ms`, "<= 100 ms"],
      ["PostgreSQL", `${f(pgMissing.first)} ms`, `${f(pgMissing.median)} ms`, "<= 100 ms"],
    ]);
    rows.push({ bench: "replicas", metric: `get-missing-paths 10k over ${OBJECTS} ms (PG vs SQLite)`, garret: f(pgMissing.median), reference: f(sqliteMissing.median), ratio: "-", goal: "<= 100", ok: pgMissing.median <= 100 && sqliteMissing.median <= 100 });
  }
  writeSummary(flags, rows);
  note("done");
});

