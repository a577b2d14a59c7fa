/**
 * Scale-out (issue 13, acceptance 3): replica A collects (every 0.3 s, grace 0, compaction on)
 * and `garret gc` loops as a third process, while replica B takes 200 uploads whose NARs share
 * most of their chunks, with paths deleted and re-pushed meanwhile. One PostgreSQL database, one
 * s3rver bucket. Afterwards: every upload succeeded, no visible path lost a chunk (the index
 * checked against the bucket's files directly), each serves its exact NAR from both replicas,
 * and stock Nix substitutes every one of them from B.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { SQL } from "bun";
import { copyFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { narOf, NIX_OPTS, requireNix, run, runOk, tempDir } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { S3_BUCKET, startS3, type TestS3 } from "../helpers/s3.ts";
import { freshPgDatabase } from "../helpers/pg.ts";
import { nar } from "../nix/nar-writer.ts";
import { GC_TEST_ENV, randomStorePath, sha256Hex, uploadNar } from "../gc/helpers.ts";

requireNix();

const KiB = 1024;
const BASES = 20;
const UPLOADS = 200;
let s3: TestS3;
let dbUrl: string;
let a: TestServer;
let b: TestServer;
let token: string;
let key: string;
let netrc: string;

beforeAll(async () => {
  s3 = await startS3();
  dbUrl = await freshPgDatabase();
  a = await startServer({ env: { ...s3.env(), ...GC_TEST_ENV, GARRET_GC_INTERVAL: "0.3" }, args: ["--database-url", dbUrl] });
  const bDir = tempDir("garret-replica-");
  copyFileSync(join(a.dataDir, "token-secret"), join(bDir, "token-secret"));
  b = await startServer({ dataDir: bDir, env: { ...s3.env(), GARRET_GC_INTERVAL: "0" }, args: ["--database-url", dbUrl] });
  token = mintToken(a.dataDir, "--database-url", dbUrl, "--pull", "*", "--push", "*", "--create-cache", "*", "--delete", "*");
  key = await createCache(a.url, token, "live");
  await createCache(a.url, token, "victim");
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
});

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await s3?.stop();
});

const random = (n: number): Uint8Array => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
};

const makeNar = (base: Uint8Array, tag: string): Uint8Array => nar({
  type: "directory",
  entries: [["base", { type: "regular", contents: base }], ["uniq", { type: "regular", contents: `${tag}\n${"x".repeat(4096)}` }]],
});

/** A body that arrives in pieces over ~0.5-1 s, keeping the upload in flight while GC runs. */
function slowBody(data: Uint8Array): ReadableStream<Uint8Array> {
  const pieces = 5;
  const size = Math.ceil(data.length / pieces);
  let i = 0;
  return new ReadableStream({
    async pull(controller) {
      if (i >= pieces) return controller.close();
      await Bun.sleep(100 + Math.random() * 100);
      controller.enqueue(data.subarray(i * size, (i + 1) * size));
      i++;
    },
  });
}

const del = (url: string, cache: string, path: string) =>
  fetch(`${url}/_api/v1/paths/${cache}/${path.split("/").pop()!.slice(0, 32)}`, {
    method: "DELETE", headers: { authorization: `Bearer ${token}` },
  }).then((r) => r.arrayBuffer());

test("gc on replica A while replica B takes 200 uploads: no visible path loses a chunk", async () => {
  const bases = Array.from({ length: BASES }, () => random(384 * KiB));
  const victims = bases.map((base, k) => ({ path: randomStorePath(`victim-${k}`), nar: makeNar(base, `victim-${k}`) }));
  for (const v of victims) expect((await uploadNar(b.url, token, "victim", v.path, v.nar)).status).toBe(200);
  const items = Array.from({ length: UPLOADS }, (_, i) => {
    const k = i % BASES;
    return { k, path: randomStorePath(`race-${i}`), nar: makeNar(bases[k]!, `live-${i}`), state: "pending" as "pending" | "committed" | "deleted", status: 0 };
  });

  let done = false;
  let cliRuns = 0;
  const cliLoop = (async () => {
    while (!done) {
      const p = Bun.spawn(garretCmd("gc", "--data", a.dataDir, "--json", "--database-url", dbUrl), {
        env: { ...process.env, ...s3.env(), GARRET_GC_GRACE: "0" }, stdout: "pipe", stderr: "pipe",
      });
      const code = await p.exited;
      const err = await new Response(p.stderr).text();
      if (code !== 0 && !err.includes("another garbage collection is running")) throw new Error(`garret gc failed: ${err}`);
      cliRuns++;
    }
  })();
  // Churn on A: drop every path of a random base, then re-push the victim to B, so shared chunks
  // keep losing and regaining their last reference across replicas.
  const churn = (async () => {
    while (!done) {
      const k = Math.floor(Math.random() * BASES);
      await del(a.url, "victim", victims[k]!.path);
      for (const it of items) {
        if (it.k === k && it.state === "committed" && Math.random() < 0.5) {
          it.state = "deleted";
          await del(a.url, "live", it.path);
        }
      }
      await Bun.sleep(20 + Math.random() * 40);
      const r = await uploadNar(b.url, token, "victim", victims[k]!.path, victims[k]!.nar);
      if (r.status !== 200) throw new Error(`victim re-upload failed: ${r.status} ${await r.text()}`);
    }
  })();

  await Promise.all(items.map(async (it, i) => {
    await Bun.sleep((i / UPLOADS) * 4000);
    const res = await uploadNar(b.url, token, "live", it.path, it.nar, [], slowBody(it.nar));
    it.status = res.status;
    const body = await res.text();
    if (res.status !== 200) console.error(`upload ${i}: ${res.status} ${body}`);
    if (it.state === "pending") it.state = "committed";
  }));
  done = true;
  await Promise.all([cliLoop, churn]);
  expect(items.map((it) => it.status)).toEqual(Array(UPLOADS).fill(200));
  expect(cliRuns).toBeGreaterThan(1);

  const settle = run(garretCmd("gc", "--data", a.dataDir, "--json", "--database-url", dbUrl), { env: { ...s3.env(), GARRET_GC_GRACE: "0" } });
  expect(settle.code === 0 || settle.stderr.includes("another garbage collection")).toBe(true);

  // The index against the bucket's files: every chunk a valid NAR uses is in a valid pack whose
  // stored object holds its bytes.
  const sql = new SQL(dbUrl);
  try {
    const rows = await sql.unsafe(`SELECT DISTINCT c.chunk_hash, c.state, p.state AS pack_state, p.storage_key, c.pack_offset, c.stored_size
      FROM nar_chunks nc JOIN nars n ON n.id = nc.nar_id AND n.state = 'valid'
      JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id`) as
      { chunk_hash: string; state: string; pack_state: string; storage_key: string; pack_offset: string; stored_size: string }[];
    expect(rows.length).toBeGreaterThan(0);
    const lost = rows.filter((r) => {
      if (r.state !== "valid" || r.pack_state !== "valid") return true;
      try {
        return statSync(join(s3.dir, S3_BUCKET, `${r.storage_key}._S3rver_object`)).size < Number(r.pack_offset) + Number(r.stored_size);
      } catch {
        return true;
      }
    });
    expect(lost).toEqual([]);
  } finally {
    await sql.close();
  }

  // Every path still visible serves exactly its NAR from both replicas; deleted ones are gone.
  const visible = items.filter((it) => it.state === "committed");
  expect(visible.length).toBeGreaterThan(20);
  const auth = { authorization: `Bearer ${token}` };
  for (const it of items) {
    for (const s of [a, b]) {
      const res = await fetch(`${s.url}/live/${it.path.split("/").pop()!.slice(0, 32)}.narinfo`, { headers: auth });
      const text = await res.text();
      if (it.state === "deleted") {
        expect(res.status).toBe(404);
        continue;
      }
      expect(res.status).toBe(200);
      const url = /^URL: (.*)$/m.exec(text)![1]!;
      const body = new Uint8Array(await (await fetch(`${s.url}/live/${url}`, { headers: auth })).arrayBuffer());
      expect(sha256Hex(Bun.zstdDecompressSync(body))).toBe(sha256Hex(it.nar));
    }
  }

  // Stock Nix substitutes every visible path from B, in one run.
  const r = run(["nix-store", ...NIX_OPTS, "--option", "substituters", `${b.url}/live`, "--option", "trusted-public-keys", key,
    "--option", "netrc-file", netrc, "-r", ...visible.map((it) => it.path)]);
  expect(r.code).toBe(0);
  for (const it of visible) expect(sha256Hex(narOf(it.path))).toBe(sha256Hex(it.nar));
  runOk(["nix-store", "--delete", ...visible.map((it) => it.path)]);
}, 170000);
