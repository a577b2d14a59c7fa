/**
 * Scale-out (issue 13): two `garret serve` replicas on one PostgreSQL database (a real server, see
 * test/helpers/pg.ts) and one S3 bucket (a real s3rver process). Each replica has its own data dir
 * holding only the shared token secret; metadata and bytes are shared.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { copyFileSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClosure, buildExpr, deleteClosure, narOf, narStream, NIX_OPTS, outcome, requireNix, run, SH, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { pathInfo, storeHashOf, uploadPath } from "../helpers/api.ts";
import { S3_BUCKET, startS3, type TestS3 } from "../helpers/s3.ts";
import { freshPgDatabase } from "../helpers/pg.ts";
import { PG_CACHE_RECORD_MS, PostgresMetaStore } from "../../src/db/postgres.ts";

requireNix();

const MiB = 1024 * 1024;
let s3: TestS3;
let dbUrl: string;
let sql: SQL;
let a: TestServer;
let b: TestServer;
let token: string;
const servers: TestServer[] = [];

/** A replica: its own data dir with the shared token secret, the shared database and bucket. */
async function replica(env: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = tempDir("garret-replica-");
  if (a) copyFileSync(join(a.dataDir, "token-secret"), join(dataDir, "token-secret"));
  const s = await startServer({ dataDir, env: { ...s3.env(), ...env }, args: ["--database-url", dbUrl] });
  servers.push(s);
  return s;
}

function bucket(): { objects: number; bytes: number } {
  let objects = 0;
  let bytes = 0;
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith("._S3rver_object")) {
        objects++;
        bytes += statSync(p).size;
      }
    }
  };
  walk(join(s3.dir, S3_BUCKET));
  return { objects, bytes };
}

/** `garret gc` as another process, on the shared database and bucket. */
function gc(dataDir: string): { code: number; stdout: string; stderr: string } {
  return run(garretCmd("gc", "--data", dataDir, "--json", "--database-url", dbUrl), { env: { ...s3.env(), GARRET_GC_GRACE: "0" } });
}

const count = async (q: string): Promise<number> => Number(((await sql.unsafe(q)) as { n: string }[])[0]!.n);

beforeAll(async () => {
  s3 = await startS3();
  dbUrl = await freshPgDatabase();
  sql = new SQL(dbUrl);
  a = await replica();
  b = await replica();
  token = mintToken(a.dataDir, "--database-url", dbUrl, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*");
});

afterAll(async () => {
  for (const s of servers.splice(0)) await s.stop();
  await sql?.close();
  await s3?.stop();
});

describe("two replicas, one PostgreSQL, one bucket", () => {
  test("a closure pushed to replica A is substituted by stock Nix from replica B", async () => {
    const key = await createCache(a.url, token, "shared", { is_public: true });
    const closure = buildClosure(uniqueTag(), { bigBytes: 2 * MiB });
    const nar = narOf(closure.top);
    for (const p of [closure.dep, closure.top]) expect((await uploadPath(a.url, token, "shared", p)).status).toBe(200);
    deleteClosure(closure.top);
    expect(outcome(substitute(`${b.url}/shared`, key, closure.top))).toBe("ok");
    expect(narOf(closure.top).equals(nar)).toBe(true);
  });

  test("the same NAR pushed to A and B at the same moment is stored once (in the bucket)", async () => {
    await createCache(a.url, token, "twin-a");
    await createCache(a.url, token, "twin-b");
    const path = buildExpr(`let ${SH} in sh "twin-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${4 * MiB} /dev/urandom > $out/big"`);
    const before = bucket().bytes;
    const [ra, rb] = await Promise.all([uploadPath(a.url, token, "twin-a", path), uploadPath(b.url, token, "twin-b", path)]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    const hex = pathInfo(path).narHash.slice("sha256:".length);
    expect(await count(`SELECT COUNT(*) AS n FROM nars WHERE nar_hash = '${hex}'`)).toBe(1);
    // Whatever the loser of the race wrote is unreferenced: the collector removes it.
    const r = gc(a.dataDir);
    expect(r.code).toBe(0);
    const added = bucket().bytes - before;
    expect(added).toBeGreaterThanOrEqual(4 * MiB);
    expect(added).toBeLessThan(4.5 * MiB);
    for (const [s, cache] of [[a, "twin-b"], [b, "twin-a"]] as const) {
      const res = await fetch(`${s.url}/${cache}/${storeHashOf(path)}.narinfo`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
    }
  });

  test("stock nix copy through a balancer that alternates A and B: each NAR is staged on one replica and published by the other", async () => {
    const key = await createCache(a.url, token, "balanced", { is_public: true });
    // Round robin, request by request: Nix sends four per path (HEAD narinfo, HEAD nar, PUT nar,
    // PUT narinfo), so a path's NAR and its narinfo always reach different replicas.
    let n = 0;
    const balancer = Bun.serve({
      hostname: "127.0.0.1", port: 0,
      fetch(req) {
        const target = [a, b][n++ % 2]!;
        const headers = new Headers(req.headers);
        headers.delete("expect");
        const u = new URL(req.url);
        return fetch(`${target.url}${u.pathname}${u.search}`, { method: req.method, headers, body: req.body, redirect: "manual" });
      },
    });
    try {
      const tag = uniqueTag();
      const top = buildExpr(`
        let ${SH}
          leaf = sh "rr-leaf-${tag}" "/bin/mkdir $out; /usr/bin/head -c 200000 /dev/urandom > $out/data";
          mid = sh "rr-mid-${tag}" "/bin/mkdir $out; echo \${leaf} > $out/ref";
        in sh "rr-top-${tag}" "echo ${tag} \${mid} > $out"`);
      const closure = run(["nix-store", "-qR", top]).stdout.trim().split("\n");
      expect(closure.length).toBe(3);
      const nars = closure.map((p) => narOf(p));
      const netrc = join(tempDir(), "netrc");
      writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
      // Spawned, not run: the balancer answers on this process's event loop meanwhile.
      const copy = Bun.spawn(["nix", ...NIX_OPTS, "--option", "netrc-file", netrc, "copy", "--to",
        `http://127.0.0.1:${balancer.port}/balanced?compression=zstd`, top], { stdout: "ignore", stderr: "pipe" });
      const stderr = await new Response(copy.stderr).text();
      if ((await copy.exited) !== 0) console.error(stderr);
      expect(copy.exitCode).toBe(0);
      for (const s of [a, b]) expect(s.log()).toMatch(/PUT \/balanced\/nar\/\S+ 204/);
      for (const s of [a, b]) expect(s.log()).toMatch(/PUT \/balanced\/[0-9a-z]{32}\.narinfo 204/);
      deleteClosure(top);
      expect(outcome(substitute(`${a.url}/balanced`, key, top))).toBe("ok");
      closure.forEach((p, i) => expect(narOf(p).equals(nars[i]!)).toBe(true));
    } finally {
      balancer.stop(true);
    }
  });

  test(`a cache created or made public on A is served as such by B within ${PG_CACHE_RECORD_MS} ms`, async () => {
    const info = (s: TestServer) => fetch(`${s.url}/later/nix-cache-info`).then((r) => r.status);
    expect(await info(b)).toBe(404); // B now remembers that the name holds nothing
    await createCache(a.url, token, "later");
    expect(await info(b)).toBe(404); // private: looks missing
    const res = await fetch(`${a.url}/_api/v1/cache-config/later`, {
      method: "PATCH", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ is_public: true }),
    });
    expect(res.status).toBe(200);
    const changed = performance.now();
    expect(await info(a)).toBe(200);
    // The documented bound: B's cache records are at most PG_CACHE_RECORD_MS old.
    await Bun.sleep(Math.max(0, PG_CACHE_RECORD_MS + 50 - (performance.now() - changed)));
    expect(await info(b)).toBe(200);
  });

  test("two collectors at once across processes: one runs, the other is turned away", async () => {
    const holder = await PostgresMetaStore.open(dbUrl, 2);
    try {
      expect(await holder.lockGc("test-holder", 0, 600)).toBe(true);
      const r = gc(b.dataDir);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("another garbage collection is running");
      await holder.unlockGc("test-holder");
      expect(gc(b.dataDir).code).toBe(0);
      // And started together, they never both collect: each either runs or is turned away.
      const both = await Promise.all([0, 1].map(async () => {
        const p = Bun.spawn(garretCmd("gc", "--data", a.dataDir, "--json", "--database-url", dbUrl), {
          env: { ...process.env, ...s3.env(), GARRET_GC_GRACE: "0" }, stdout: "pipe", stderr: "pipe",
        });
        const code = await p.exited;
        return { code, err: await new Response(p.stderr).text() };
      }));
      for (const x of both) expect(x.code === 0 || x.err.includes("another garbage collection is running")).toBe(true);
      expect(both.some((x) => x.code === 0)).toBe(true);
    } finally {
      await holder.end();
    }
  });

  test("a replica killed with SIGKILL mid-upload: nothing visible, its leftovers are collected later", async () => {
    const victim = await replica({ GARRET_UPLOAD_LEASE_TTL: "1" });
    await createCache(a.url, token, "crash");
    const path = buildExpr(`let ${SH} in sh "crash-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${48 * MiB} /dev/urandom > $out/big"`);
    const before = bucket();
    const dump = narStream(path);
    let seen = 0;
    const body = dump.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, c) {
        seen += chunk.length;
        if (seen >= 24 * MiB) victim.proc.kill("SIGKILL");
        c.enqueue(chunk);
      },
    }));
    const outcome = await uploadPath(victim.url, token, "crash", path, body).then((r) => r.status, () => 0);
    expect(outcome).not.toBe(200);
    await victim.proc.exited;
    expect(victim.proc.signalCode).toBe("SIGKILL");
    const res = await fetch(`${a.url}/crash/${storeHashOf(path)}.narinfo`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(404);
    expect(await count("SELECT COUNT(*) AS n FROM packs WHERE state = 'pending'")).toBeGreaterThan(0);
    // Once the dead replica's lease has expired, a collection on A removes what it left.
    await Bun.sleep(2100);
    const r = gc(a.dataDir);
    expect(r.code).toBe(0);
    expect(await count("SELECT COUNT(*) AS n FROM packs WHERE state = 'pending'")).toBe(0);
    expect(bucket().bytes).toBeLessThanOrEqual(before.bytes);
  });
});
