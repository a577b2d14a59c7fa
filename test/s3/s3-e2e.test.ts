/**
 * garret on S3 (issue 4): push, substitute with stock Nix, dedup across caches, restart against
 * the same bucket and database, S3 dying mid-upload, and wrong credentials at startup.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildClosure, buildExpr, deleteClosure, narOf, narStream, outcome, requireNix, run, SH, substitute, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { narinfoOf, openDb, pathInfo, storeHashOf, uploadPath } from "../helpers/api.ts";
import { S3_BUCKET, startS3, type TestS3 } from "../helpers/s3.ts";

requireNix();

const MiB = 1024 * 1024;
let s3: TestS3;
let server: TestServer;
let token: string;
const keys: Record<string, string> = {};

/** Bytes s3rver holds for the bucket (its on-disk objects, excluding its own metadata files). */
function bucketBytes(): { objects: number; bytes: number } {
  const root = join(s3.dir, S3_BUCKET);
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
  walk(root);
  return { objects, bytes };
}

async function pushClosure(cache: string, top: string): Promise<void> {
  const deps = pathInfo(top).references.filter((r) => r !== top);
  for (const p of [...deps, top]) expect((await uploadPath(server.url, token, cache, p)).status).toBe(200);
}

beforeAll(async () => {
  s3 = await startS3();
  server = await startServer({ env: s3.env() });
  expect(server.log()).toContain("storage: s3");
  token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  for (const c of ["s1", "s2"]) keys[c] = await createCache(server.url, token, c, { is_public: true });
});

afterAll(async () => {
  await server?.stop();
  await s3?.stop();
});

describe("S3 backend end to end", () => {
  let closure: { top: string; dep: string };
  const nars: Record<string, Buffer> = {};

  test("push, then stock Nix substitutes from S3-backed cache", async () => {
    closure = buildClosure(uniqueTag(), { bigBytes: 3 * MiB });
    nars.top = narOf(closure.top);
    nars.dep = narOf(closure.dep);
    const before = bucketBytes().objects;
    await pushClosure("s1", closure.top);
    // Two NARs, each one upload: at most one pack object each.
    expect(bucketBytes().objects - before).toBeLessThanOrEqual(2);
    deleteClosure(closure.top);
    expect(outcome(substitute(`${server.url}/s1`, keys.s1!, closure.top))).toBe("ok");
    expect(narOf(closure.dep).equals(nars.dep!)).toBe(true);
  });

  test("the same closure in a second cache adds no bytes to the bucket", async () => {
    const before = bucketBytes();
    await pushClosure("s2", closure.top);
    expect(bucketBytes()).toEqual(before);
    deleteClosure(closure.top);
    expect(outcome(substitute(`${server.url}/s2`, keys.s2!, closure.top))).toBe("ok");
    expect(narOf(closure.top).equals(nars.top!)).toBe(true);
  });

  test("a server restarted against the same bucket and database serves everything", async () => {
    await server.stop();
    server = await startServer({ dataDir: server.dataDir, env: s3.env() });
    deleteClosure(closure.top);
    for (const cache of ["s1", "s2"]) {
      expect(outcome(substitute(`${server.url}/${cache}`, keys[cache]!, closure.top))).toBe("ok");
      deleteClosure(closure.top);
    }
    expect(outcome(substitute(`${server.url}/s1`, keys.s1!, closure.top))).toBe("ok");
  });

  test("S3 stopped mid-upload: the upload fails cleanly; a retry after restart succeeds", async () => {
    const path = buildExpr(`let ${SH} in sh "s3-fault-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${40 * MiB} /dev/urandom > $out/big"`);
    let seen = 0;
    let stopped: Promise<void> | null = null;
    const body = narStream(path).pipeThrough(new TransformStream({
      transform(chunk, controller) {
        seen += chunk.length;
        if (seen > 12 * MiB && !stopped) stopped = s3.stop();
        controller.enqueue(chunk);
      },
    }));
    const res = await uploadPath(server.url, token, "s1", path, body);
    await stopped;
    const answer = (await res.json()) as { error: string; message: string };
    expect(res.status).toBe(503);
    expect(answer.error).toBe("StorageError");
    expect(answer.message).toContain("S3");
    expect((await fetch(`${server.url}/s1/${storeHashOf(path)}.narinfo`)).status).toBe(404);
    const db = openDb(server.dataDir);
    const hex = pathInfo(path).narHash.slice(7);
    expect(db.query("SELECT COUNT(*) AS n FROM nars WHERE nar_hash = ?").get(hex)).toEqual({ n: 0 });
    db.close();

    await s3.restart();
    const retry = await uploadPath(server.url, token, "s1", path);
    expect(retry.status).toBe(200);
    const info = await narinfoOf(server.url, "s1", path);
    const nar = await fetch(`${server.url}/s1/${info.URL}`);
    const plain = Bun.zstdDecompressSync(new Uint8Array(await nar.arrayBuffer()));
    expect(new Bun.CryptoHasher("sha256").update(plain).digest("hex")).toBe(hex);
  });
});

describe("download redirect", () => {
  test("when enabled, a NAR that fills one pack is answered with a presigned URL that Nix follows", async () => {
    const redirecting = await startServer({ env: { ...s3.env(), GARRET_S3_DOWNLOAD_REDIRECT: "true" } });
    try {
      const t = mintToken(redirecting.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
      const key = await createCache(redirecting.url, t, "r", { is_public: true });
      const { top, dep } = buildClosure(uniqueTag(), { bigBytes: 2 * MiB });
      const depNar = narOf(dep);
      for (const p of [dep, top]) expect((await uploadPath(redirecting.url, t, "r", p)).status).toBe(200);
      const info = await narinfoOf(redirecting.url, "r", dep);
      const res = await fetch(`${redirecting.url}/r/${info.URL}`, { redirect: "manual" });
      expect(res.status).toBe(302);
      const location = res.headers.get("location")!;
      expect(location).toStartWith(`${s3.endpoint}/${S3_BUCKET}/packs/`);
      expect(location).toContain("X-Amz-Signature=");
      const direct = new Uint8Array(await (await fetch(location)).arrayBuffer());
      expect(direct.length).toBe(Number(info.FileSize));
      expect(Buffer.from(Bun.zstdDecompressSync(direct)).equals(depNar)).toBe(true);
      // A range still streams through the server.
      expect((await fetch(`${redirecting.url}/r/${info.URL}`, { headers: { range: "bytes=0-9" }, redirect: "manual" })).status).toBe(206);
      deleteClosure(top);
      expect(outcome(substitute(`${redirecting.url}/r`, key, top))).toBe("ok");
      expect(narOf(dep).equals(depNar)).toBe(true);
    } finally {
      await redirecting.stop();
    }
  });

  test("off by default: the server streams the NAR itself", async () => {
    const res = await fetch(`${server.url}/s1/nix-cache-info`);
    expect(res.status).toBe(200);
    const info = await narinfoOf(server.url, "s1", (await firstPath()));
    expect((await fetch(`${server.url}/s1/${info.URL}`, { redirect: "manual" })).status).toBe(200);
  });
});

async function firstPath(): Promise<string> {
  const db = openDb(server.dataDir);
  const row = db.query("SELECT store_path FROM objects o JOIN caches c ON c.id = o.cache_id WHERE c.name = 's1' LIMIT 1").get() as { store_path: string };
  db.close();
  return row.store_path;
}

describe("startup checks", () => {
  // A data dir of its own: the running server's is locked against a second serve.
  const freshDataDir = () => mkdtempSync(join(tmpdir(), "garret-s3-startup-"));

  test("wrong credentials stop the server at startup with one line naming the problem", () => {
    const r = run(garretCmd("serve", "--listen", "127.0.0.1:0", "--data", freshDataDir()), {
      env: { ...s3.env(), GARRET_S3_ACCESS_KEY_ID: "NOT-A-KEY", GARRET_S3_SECRET_ACCESS_KEY: "wrong-secret" }, timeout: 15000,
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("credentials");
  });

  test("a missing bucket stops the server at startup with one line naming it", () => {
    const r = run(garretCmd("serve", "--listen", "127.0.0.1:0", "--data", freshDataDir()), { env: s3.env("no-such-bucket"), timeout: 15000 });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('error: storage: S3 bucket "no-such-bucket" does not exist');
  });

  test("s3 without a bucket is a config error naming the key", () => {
    const r = run(garretCmd("serve", "--data", server.dataDir), { env: { GARRET_STORAGE_TYPE: "s3" } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('error: storage.bucket: required when storage.type = "s3"');
  });
});
