/**
 * Threat: a tenant learns what another tenant's private cache holds from the answer to its own
 * upload. Storage is deduplicated globally, and upload-path used to say so from the global store:
 * "Deduplicated", frac_deduplicated 1 and file_size 0 confirmed that some cache held the very NAR
 * the caller sent (a config file with a guessed secret in it, tried one guess at a time), and
 * frac_deduplicated told how much of a near copy was there. The answer now counts only caches the
 * caller may read; the bytes are still stored once.
 *
 * The same through time: an upload whose chunks were found stored wrote nothing, and answered in
 * half the time of a fresh one or less (20 MB: 63 against 147 ms, one shot enough to tell). Now a
 * chunk only other tenants' caches use is compressed, written and synced again, and its new copy
 * replaces the stored one: the work, so the time, is a fresh upload's (`npm run bench -- dedup`
 * shows the three cases side by side).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { buildExpr, deleteFromStore, outcome, requireNix, SH, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { danglingChunks, openDb, storedBytes, uploadPath } from "../helpers/api.ts";
import { runGc } from "../gc/helpers.ts";

requireNix();

const MiB = 1024 * 1024;
let server: TestServer;
let alice: string;
let mallory: string;
let aliceKey: string;

beforeAll(async () => {
  server = await startServer();
  alice = mintToken(server.dataDir, "--pull", "alice-*", "--push", "alice-*", "--create-cache", "alice-*");
  mallory = mintToken(server.dataDir, "--pull", "mal-*", "--push", "mal-*", "--create-cache", "mal-*");
  aliceKey = await createCache(server.url, alice, "alice-private");
  await createCache(server.url, alice, "alice-public", { is_public: true });
  await createCache(server.url, mallory, "mal-a");
  await createCache(server.url, mallory, "mal-b");
});

afterAll(async () => {
  await server?.stop();
});

interface Answer { kind: string; file_size: number; frac_deduplicated: number }

async function upload(token: string, cache: string, path: string): Promise<Answer> {
  const res = await uploadPath(server.url, token, cache, path);
  expect(res.status).toBe(200);
  return (await res.json()) as Answer;
}

const chunkCount = (): number => {
  const db = openDb(server.dataDir);
  try {
    return Number((db.query("SELECT COUNT(*) AS n FROM chunks").get() as { n: number }).n);
  } finally {
    db.close();
  }
};

/** The upload series of /metrics that could tell a dedup (no token is configured: it is open). */
async function dedupMetrics(): Promise<{ uploaded: number; deduplicated: number; savedBytes: number }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const value = (series: string): number => Number(text.split("\n").find((l) => l.startsWith(`${series} `))?.split(" ")[1] ?? 0);
  return {
    uploaded: value('garret_uploads_total{kind="Uploaded"}'),
    deduplicated: value('garret_uploads_total{kind="Deduplicated"}'),
    savedBytes: value("garret_dedup_saved_bytes_total"),
  };
}

/** A path of `bytes` random bytes, and one that differs from it by an edit in the middle. */
function pathAndNearCopy(name: string, bytes: number): [string, string] {
  const tag = uniqueTag();
  const base = buildExpr(`let ${SH} in sh "${name}-${tag}" "/bin/mkdir $out; /usr/bin/head -c ${bytes} /dev/urandom > $out/big"`);
  const near = buildExpr(`let ${SH} in sh "${name}-near-${tag}" ''
    /bin/mkdir $out
    /usr/bin/head -c ${bytes / 2} ${base}/big > $out/big
    echo "one edit" >> $out/big
    /usr/bin/tail -c +${bytes / 2 + 1} ${base}/big >> $out/big
  ''`);
  return [base, near];
}

test("a NAR held only in another tenant's private cache is answered like a new one, and still stored once", async () => {
  const [secret] = pathAndNearCopy("dd-secret", 2 * MiB);
  const first = await upload(alice, "alice-private", secret);
  expect(first).toMatchObject({ kind: "Uploaded", frac_deduplicated: 0 });
  const chunks = chunkCount();
  const before = await dedupMetrics();
  // The same NAR: the answer Alice got for sending it first, nothing that says it was there.
  expect(await upload(mallory, "mal-a", secret)).toEqual(first);
  expect(chunkCount()).toBe(chunks); // global dedup still stored nothing new
  // Nor does /metrics, open to anyone by default, count it as a dedup.
  expect(await dedupMetrics()).toEqual({ ...before, uploaded: before.uploaded + 1 });
});

test("a NAR held only in another tenant's private cache costs the work of a new one, and stays stored once and intact", async () => {
  const [secret] = pathAndNearCopy("dd-work", 2 * MiB);
  await upload(alice, "alice-private", secret);
  const [chunks, bytes] = [chunkCount(), storedBytes(server.dataDir)];
  await upload(mallory, "mal-a", secret);
  // Every byte written again (random bytes do not compress), as for a NAR never seen...
  expect(storedBytes(server.dataDir) - bytes).toBeGreaterThanOrEqual(2 * MiB);
  // ...and indexed once: the new copy replaced the stored one.
  expect(chunkCount()).toBe(chunks);
  // Now Mallory's own cache holds it: reused, nothing written.
  const again = storedBytes(server.dataDir);
  expect(await upload(mallory, "mal-b", secret)).toMatchObject({ kind: "Deduplicated" });
  expect(storedBytes(server.dataDir)).toBe(again);
  // Alice's path is served from the new copy, and a collection keeps every chunk's bytes.
  runGc(server.dataDir);
  expect(danglingChunks(server.dataDir)).toEqual([]);
  const netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${alice}\n`);
  deleteFromStore(secret);
  expect(outcome(substitute(`${server.url}/alice-private`, aliceKey, secret, netrc))).toBe("ok");
});

test("a near copy of another tenant's private NAR is told none of its chunks were there", async () => {
  const [secret, nearSecret] = pathAndNearCopy("dd-near", 2 * MiB);
  await upload(alice, "alice-private", secret);
  const chunks = chunkCount();
  const near = await upload(mallory, "mal-a", nearSecret);
  expect(near.kind).toBe("Uploaded");
  expect(near.frac_deduplicated).toBe(0);
  expect(chunkCount() - chunks).toBeLessThanOrEqual(4); // its chunks are mostly Alice's, stored once
});

test("what the caller may read is not written again", async () => {
  const [own, nearOwn] = pathAndNearCopy("dd-own-work", 2 * MiB);
  await upload(mallory, "mal-a", own);
  let bytes = storedBytes(server.dataDir);
  await upload(mallory, "mal-b", own);
  expect(storedBytes(server.dataDir)).toBe(bytes);
  // A near copy writes only the chunks around the edit.
  bytes = storedBytes(server.dataDir);
  await upload(mallory, "mal-b", nearOwn);
  expect(storedBytes(server.dataDir) - bytes).toBeLessThan(MiB);
});

test("what the caller may read still counts: its own caches and public ones", async () => {
  const [own, nearOwn] = pathAndNearCopy("dd-own", 2 * MiB);
  await upload(mallory, "mal-a", own);
  // Mallory's own other cache held it: deduplicated, as she can see for herself.
  expect(await upload(mallory, "mal-b", own)).toMatchObject({ kind: "Deduplicated", frac_deduplicated: 1 });
  const near = await upload(mallory, "mal-b", nearOwn);
  expect(near.kind).toBe("Uploaded");
  expect(near.frac_deduplicated).toBeGreaterThan(0.75); // all but the chunks around the edit

  // A public cache is anyone's to read.
  const [published] = pathAndNearCopy("dd-public", 1 * MiB);
  await upload(alice, "alice-public", published);
  expect(await upload(mallory, "mal-a", published)).toMatchObject({ kind: "Deduplicated", frac_deduplicated: 1 });
});

test("a cache this server just created counts at once (the list of caches is kept for a second)", async () => {
  const [first, second] = pathAndNearCopy("dd-new-cache", 64 * 1024);
  await upload(mallory, "mal-a", first); // the list is read now, before the cache exists
  await createCache(server.url, mallory, "mal-new");
  await upload(mallory, "mal-new", second);
  expect(await upload(mallory, "mal-b", second)).toMatchObject({ kind: "Deduplicated" });
});

test("a copy made under other compression settings leaves the stored one in place: both tenants still substitute", async () => {
  const own = await startServer();
  try {
    const a = mintToken(own.dataDir, "--pull", "a", "--push", "a", "--create-cache", "a");
    const m = mintToken(own.dataDir, "--pull", "m", "--push", "m", "--create-cache", "m");
    const keys = { a: await createCache(own.url, a, "a"), m: await createCache(own.url, m, "m") };
    const [secret] = pathAndNearCopy("dd-settings", 2 * MiB);
    expect((await uploadPath(own.url, a, "a", secret)).status).toBe(200);
    await own.stop();
    // The same data dir, now storing brotli: a fresh copy of zstd chunks cannot stand in for them.
    const again = await startServer({ dataDir: own.dataDir, args: ["--compression", "br"] });
    own.stop = again.stop;
    const bytes = storedBytes(own.dataDir);
    expect((await uploadPath(again.url, m, "m", secret)).status).toBe(200);
    expect(storedBytes(own.dataDir) - bytes).toBeGreaterThanOrEqual(2 * MiB); // the work was done all the same
    for (const [cache, token] of [["a", a], ["m", m]] as const) {
      const netrc = join(tempDir(), "netrc");
      writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
      deleteFromStore(secret);
      expect([cache, outcome(substitute(`${again.url}/${cache}`, keys[cache], secret, netrc))]).toEqual([cache, "ok"]);
    }
    runGc(own.dataDir);
    expect(danglingChunks(own.dataDir)).toEqual([]);
  } finally {
    await own.stop();
  }
});
