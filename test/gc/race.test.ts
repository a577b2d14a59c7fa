/**
 * The collector against uploads (issue 5, acceptance 4). 200 uploads whose NARs share most of
 * their chunks stream in slowly, dozens in flight at any moment, while paths sharing those chunks
 * are deleted and re-pushed, the server collects every 0.3 s (grace 0, compaction on) and
 * `garret gc` runs in a loop beside it. Afterwards every upload has succeeded, every visible path
 * serves its exact NAR (all checked over HTTP, a sample substituted by stock Nix), and no index
 * entry points at missing bytes (checked in the database and storage directly).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireNix, run, runOk, substitute, tempDir } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { danglingChunks, openDb } from "../helpers/api.ts";
import { nar } from "../nix/nar-writer.ts";
import { GC_TEST_ENV, randomStorePath, sha256Hex, uploadNar } from "./helpers.ts";

requireNix();

const KiB = 1024;
const BASES = 20;
const UPLOADS = 200;
let server: TestServer;
let token: string;
let netrc: string;
let key: string;

beforeAll(async () => {
  server = await startServer({ env: { ...GC_TEST_ENV, GARRET_GC_INTERVAL: "0.3" } });
  token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--delete", "*");
  key = await createCache(server.url, token, "live");
  await createCache(server.url, token, "victim");
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
});

afterAll(async () => {
  await server?.stop();
});

const random = (n: number): Uint8Array => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  return b;
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

const del = (cache: string, path: string) =>
  fetch(`${server.url}/_api/v1/paths/${cache}/${path.split("/").pop()!.slice(0, 32)}`, {
    method: "DELETE", headers: { authorization: `Bearer ${token}` },
  }).then((r) => r.arrayBuffer());

test("GC looping beside 200 uploads sharing chunks never breaks a visible path", async () => {
  const bases = Array.from({ length: BASES }, () => random(384 * KiB));
  const victims = bases.map((b, k) => ({ path: randomStorePath(`victim-${k}`), nar: makeNar(b, `victim-${k}`) }));
  for (const v of victims) expect((await uploadNar(server.url, token, "victim", v.path, v.nar)).status).toBe(200);
  const newItem = (i: number) => {
    const k = i % BASES;
    return { k, path: randomStorePath(`race-${i}`), nar: makeNar(bases[k]!, `live-${i}`), state: "pending" as "pending" | "committed" | "deleted", status: 0 };
  };
  const items = Array.from({ length: UPLOADS }, (_, i) => newItem(i));

  let done = false;
  // The CLI collector in a loop, competing with the server's own for the lock.
  let cliRuns = 0;
  const cliChunks: number[] = [];
  const cliLoop = (async () => {
    while (!done) {
      const p = Bun.spawn(garretCmd("gc", "--data", server.dataDir, "--json"), { env: { ...process.env, GARRET_GC_GRACE: "0" }, stdout: "pipe", stderr: "pipe" });
      const code = await p.exited;
      const err = await new Response(p.stderr).text();
      const out = await new Response(p.stdout).text();
      if (code === 0) cliChunks.push((JSON.parse(out) as { chunks: number }).chunks);
      if (code !== 0 && !err.includes("another garbage collection is running")) throw new Error(`garret gc failed: ${err}`);
      cliRuns++;
    }
  })();
  // Churn: drop every path of a random base (victim and committed live ones), then re-push the
  // victim, so shared chunks keep losing and regaining their last reference.
  const churn = (async () => {
    while (!done) {
      const k = Math.floor(Math.random() * BASES);
      await del("victim", victims[k]!.path);
      for (const it of items) {
        if (it.k === k && it.state === "committed" && Math.random() < 0.5) {
          it.state = "deleted";
          await del("live", it.path);
        }
      }
      await Bun.sleep(20 + Math.random() * 40);
      const r = await uploadNar(server.url, token, "victim", victims[k]!.path, victims[k]!.nar);
      if (r.status !== 200) throw new Error(`victim re-upload failed: ${r.status} ${await r.text()}\n${server.log().split("\n").filter((l) => !/^(GET|PUT|POST|DELETE|HEAD) /.test(l)).slice(-30).join("\n")}`);
    }
  })();

  const push = async (it: (typeof items)[number]) => {
    const res = await uploadNar(server.url, token, "live", it.path, it.nar, [], slowBody(it.nar));
    it.status = res.status;
    const body = await res.text();
    if (res.status !== 200) console.error(`upload ${it.path}: ${res.status} ${body}`);
    if (it.state === "pending") it.state = "committed";
  };
  // Collections that deleted chunks, by the server's collector or the CLI's.
  const sweeps = () => [...server.log().matchAll(/gc: removed \d+ objects, \d+ NARs, (\d+) chunks/g)].map((m) => Number(m[1]))
    .concat(cliChunks).filter((n) => n > 0).length;

  // 200 uploads issued over ~4 s, each streaming for ~0.5-1 s.
  await Promise.all(items.map(async (it, i) => {
    await Bun.sleep((i / UPLOADS) * 4000);
    await push(it);
  }));
  // On a loaded machine the collectors may have had few turns in that time: uploads keep streaming
  // in, a few dozen at a time, until the collectors have deleted chunks at least twice beside them.
  for (let round = 0; sweeps() < 2 && round < 20; round++) {
    const more = Array.from({ length: 20 }, (_, j) => newItem(items.length + j));
    items.push(...more);
    await Promise.all(more.map(async (it, j) => {
      await Bun.sleep(j * 50);
      await push(it);
    }));
  }
  done = true;
  await Promise.all([cliLoop, churn]);
  expect(items.map((it) => it.status)).toEqual(Array(items.length).fill(200));
  expect(cliRuns).toBeGreaterThan(3);
  // The collectors really did delete chunks while uploads were in flight.
  expect(sweeps()).toBeGreaterThanOrEqual(2);

  // Let a last collection settle everything, then check the index against storage directly.
  const settle = run(garretCmd("gc", "--data", server.dataDir, "--json"), { env: { GARRET_GC_GRACE: "0" } });
  expect(settle.code === 0 || settle.stderr.includes("another garbage collection")).toBe(true);
  expect(danglingChunks(server.dataDir)).toEqual([]);
  const db = openDb(server.dataDir);
  const broken = db.query(`SELECT COUNT(*) AS n FROM nar_chunks nc JOIN chunks c ON c.id = nc.chunk_id
    JOIN nars n ON n.id = nc.nar_id WHERE n.state = 'valid' AND c.state != 'valid'`).get() as { n: number };
  const pendingVisible = db.query(`SELECT COUNT(*) AS n FROM nar_chunks nc JOIN chunks c ON c.id = nc.chunk_id
    JOIN packs p ON p.id = c.pack_id WHERE p.state != 'valid'`).get() as { n: number };
  db.close();
  expect(broken.n).toBe(0);
  expect(pendingVisible.n).toBe(0);

  // Every path still visible serves exactly its NAR; deleted ones are gone.
  const visible = items.filter((it) => it.state === "committed");
  expect(visible.length).toBeGreaterThan(20);
  const auth = { authorization: `Bearer ${token}` };
  for (const it of items) {
    const res = await fetch(`${server.url}/live/${it.path.split("/").pop()!.slice(0, 32)}.narinfo`, { headers: auth });
    const text = await res.text();
    if (it.state === "deleted") {
      expect(res.status).toBe(404);
      continue;
    }
    expect(res.status).toBe(200);
    const url = /^URL: (.*)$/m.exec(text)![1]!;
    const body = new Uint8Array(await (await fetch(`${server.url}/live/${url}`, { headers: auth })).arrayBuffer());
    expect(sha256Hex(Bun.zstdDecompressSync(body))).toBe(sha256Hex(it.nar));
  }

  // A sample through stock Nix.
  for (const it of visible.slice(0, 5)) {
    const r = substitute(`${server.url}/live`, key, it.path, netrc);
    expect(r.code).toBe(0);
    expect(runOk(["nix-store", "--dump", it.path]).length).toBeGreaterThan(0);
    runOk(["nix-store", "--delete", it.path]);
  }
}, 170000);
