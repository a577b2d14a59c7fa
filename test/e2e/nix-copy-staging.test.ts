/**
 * Issue 15: NARs staged by native PUTs expire after `[upload] staging-ttl` and are then gone from
 * storage after a GC; they count against the token's `[upload] staging-quota`; and the same NAR
 * pushed natively and through upload-path, into two caches, is stored once. Staging is in the
 * database: it outlives a restart, and the collector keeps what a staged NAR reuses.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import zlib from "node:zlib";
import { encodeBase32 } from "../../src/nix/base32.ts";
import { buildExpr, deleteClosure, narOf, NIX_OPTS, outcome, requireNix, run, runOk, SH, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { openDb, storageFiles, uploadPath } from "../helpers/api.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";

requireNix();

let server: TestServer;
let admin: string;
const TTL_SECONDS = 2;

beforeAll(async () => {
  server = await startServer({ env: { GARRET_UPLOAD_STAGING_TTL: `${TTL_SECONDS}s`, GARRET_UPLOAD_STAGING_QUOTA: "300KiB" } });
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*");
  for (const c of ["st-a", "st-b", "st-q"]) await createCache(server.url, admin, c);
});

afterAll(async () => {
  await server?.stop();
});

const sha = (b: Uint8Array): Uint8Array => new Bun.CryptoHasher("sha256").update(b).digest() as Uint8Array;
const auth = (token = admin) => ({ authorization: `Bearer ${token}` });

/** A NAR of `bytes` random bytes (incompressible), zstd-compressed, and its native file name. */
function randomNar(bytes: number): { file: Buffer; name: string } {
  const dir = tempDir();
  writeFileSync(join(dir, "f"), crypto.getRandomValues(new Uint8Array(bytes)));
  const nar = Buffer.from(Bun.spawnSync(["nix-store", "--dump", join(dir, "f")]).stdout);
  const file = zlib.zstdCompressSync(nar);
  return { file, name: `${encodeBase32(sha(file))}.nar.zst` };
}

// First: staged NARs of later tests share this token's quota (every test token has the same subject).
test("the same NAR pushed natively and through upload-path, into two caches, is stored once", async () => {
  const tag = uniqueTag();
  const path = buildExpr(`let ${SH} in sh "st-same-${tag}" "/bin/mkdir $out; /usr/bin/head -c 150000 /dev/urandom > $out/big"`);
  const netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${admin}\n`);
  runOk(["nix", ...NIX_OPTS, "--option", "netrc-file", netrc, "copy", "--to", `${server.url}/st-a?compression=zstd`, path]);
  const db = openDb(server.dataDir);
  const count = (): { nars: number; chunks: number } => ({
    nars: (db.query("SELECT count(*) AS n FROM nars").get() as { n: number }).n,
    chunks: (db.query("SELECT count(*) AS n FROM chunks").get() as { n: number }).n,
  });
  const afterNative = count();
  const bytesAfterNative = storageFiles(server.dataDir).reduce((n, f) => n + f.size, 0);
  const res = await uploadPath(server.url, admin, "st-b", path);
  expect(res.status).toBe(200);
  expect(((await res.json()) as { kind: string }).kind).toBe("Deduplicated");
  expect(count()).toEqual(afterNative);
  expect(storageFiles(server.dataDir).reduce((n, f) => n + f.size, 0)).toBe(bytesAfterNative);
  db.close();
  expect(narOf(path).length).toBeGreaterThan(150_000);
});

describe("staging", () => {
  test("a staged NAR without a narinfo is gone after its TTL and a GC", async () => {
    const before = storageFiles(server.dataDir).length;
    const { file, name } = randomNar(200 * 1024);
    expect((await fetch(`${server.url}/st-a/nar/${name}`, { method: "PUT", headers: auth(), body: file })).status).toBe(204);
    expect((await fetch(`${server.url}/st-a/nar/${name}`, { method: "HEAD", headers: auth() })).status).toBe(200);
    // Staged is private to that cache.
    expect((await fetch(`${server.url}/st-b/nar/${name}`, { method: "HEAD", headers: auth() })).status).toBe(404);
    // Its pack is written just after the PUT answers (the narinfo's commit waits for it).
    for (let i = 0; i < 200 && storageFiles(server.dataDir).length <= before; i++) await Bun.sleep(25);
    expect(storageFiles(server.dataDir).length).toBeGreaterThan(before);
    await Bun.sleep(TTL_SECONDS * 1000 + 1500); // waits out the TTL under test; asserts no duration
    expect((await fetch(`${server.url}/st-a/nar/${name}`, { method: "HEAD", headers: auth() })).status).toBe(404);
    const gc = run(garretCmd("gc", "--data", server.dataDir, "--json"), { env: { GARRET_GC_GRACE: "0" } });
    expect(gc.code).toBe(0);
    expect(storageFiles(server.dataDir).length).toBe(before);
  });

  test("staged NARs count against the token's staging quota until published or expired", async () => {
    const token = mintToken(server.dataDir, "--pull", "st-q", "--push", "st-q");
    const one = randomNar(200 * 1024);
    const two = randomNar(200 * 1024);
    expect((await fetch(`${server.url}/st-q/nar/${one.name}`, { method: "PUT", headers: auth(token), body: one.file })).status).toBe(204);
    const res = await fetch(`${server.url}/st-q/nar/${two.name}`, { method: "PUT", headers: auth(token), body: two.file });
    expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([413, "StagingQuotaExceeded"]);
    expect((await fetch(`${server.url}/st-q/nar/${two.name}`, { method: "HEAD", headers: auth(token) })).status).toBe(404);
    await Bun.sleep(TTL_SECONDS * 1000 + 1500);
    // Expired, the room is back.
    expect((await fetch(`${server.url}/st-q/nar/${two.name}`, { method: "PUT", headers: auth(token), body: two.file })).status).toBe(204);
  });
});


/** What Nix PUTs for a path pushed with zstd: the NAR's file, its name, and the narinfo naming it. */
function nativeUpload(path: string): { file: Buffer; name: string; narinfo: string; hash: string } {
  const nar = narOf(path);
  const file = zlib.zstdCompressSync(nar);
  const name = `${encodeBase32(sha(file))}.nar.zst`;
  const refs = runOk(["nix-store", "-q", "--references", path]).trim().split("\n").filter(Boolean).map((r) => r.slice("/nix/store/".length));
  const narinfo = [`StorePath: ${path}`, `URL: nar/${name}`, "Compression: zstd", `FileHash: sha256:${name.slice(0, 52)}`,
    `FileSize: ${file.length}`, `NarHash: sha256:${encodeBase32(sha(nar))}`, `NarSize: ${nar.length}`, `References: ${refs.join(" ")}`, ""].join("\n");
  return { file, name, narinfo, hash: path.slice("/nix/store/".length, "/nix/store/".length + 32) };
}

/** The path deleted here and substituted from the cache, only its key trusted: the same NAR comes back. */
function expectSubstituted(cacheUrl: string, key: string, token: string, path: string, nar: Buffer): void {
  deleteClosure(path);
  const netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
  expect(outcome(substitute(cacheUrl, key, path, netrc))).toBe("ok");
  expect(narOf(path).equals(nar)).toBe(true);
}

describe("staging is in the database", () => {
  test("a NAR staged before a restart is published by the narinfo PUT sent after it", async () => {
    let s = await startServer();
    try {
      const token = mintToken(s.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
      const key = await createCache(s.url, token, "st-restart");
      const path = buildExpr(`let ${SH} in sh "st-restart-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c 100000 /dev/urandom > $out/data"`);
      const nar = narOf(path);
      const up = nativeUpload(path);
      expect((await fetch(`${s.url}/st-restart/nar/${up.name}`, { method: "PUT", headers: auth(token), body: up.file })).status).toBe(204);
      await s.stop();
      s = await startServer({ dataDir: s.dataDir });
      expect((await fetch(`${s.url}/st-restart/nar/${up.name}`, { method: "HEAD", headers: auth(token) })).status).toBe(200);
      expect((await fetch(`${s.url}/st-restart/${up.hash}.narinfo`, { method: "PUT", headers: auth(token), body: up.narinfo })).status).toBe(204);
      expectSubstituted(`${s.url}/st-restart`, key, token, path, nar);
    } finally {
      await s.stop();
    }
  });

  test("the collector keeps the chunks a staged NAR reuses: its narinfo still publishes it after the only other copy is collected", async () => {
    const s = await startServer();
    try {
      const token = mintToken(s.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--destroy-cache", "*");
      await createCache(s.url, token, "st-first");
      const key = await createCache(s.url, token, "st-second");
      const path = buildExpr(`let ${SH} in sh "st-reuse-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c 300000 /dev/urandom > $out/data"`);
      const nar = narOf(path);
      expect((await uploadPath(s.url, token, "st-first", path)).status).toBe(200);
      // Staged in the second cache: every chunk is the first cache's already, nothing new is written.
      const up = nativeUpload(path);
      const before = storageFiles(s.dataDir).length;
      expect((await fetch(`${s.url}/st-second/nar/${up.name}`, { method: "PUT", headers: auth(token), body: up.file })).status).toBe(204);
      expect(storageFiles(s.dataDir).length).toBe(before);
      // The only path using those chunks goes, and a collection with no grace runs meanwhile.
      const del = await fetch(`${s.url}/_api/v1/cache-config/st-first`, { method: "DELETE", headers: auth(token) });
      expect(del.status).toBe(200);
      const gc = run(garretCmd("gc", "--data", s.dataDir, "--json"), { env: { GARRET_GC_GRACE: "0" } });
      expect(gc.code).toBe(0);
      expect(storageFiles(s.dataDir).length).toBe(before);
      expect((await fetch(`${s.url}/st-second/${up.hash}.narinfo`, { method: "PUT", headers: auth(token), body: up.narinfo })).status).toBe(204);
      // Published, its chunks are referenced again: another collection leaves them.
      expect(run(garretCmd("gc", "--data", s.dataDir, "--json"), { env: { GARRET_GC_GRACE: "0" } }).code).toBe(0);
      expectSubstituted(`${s.url}/st-second`, key, token, path, nar);
    } finally {
      await s.stop();
    }
  });
});
