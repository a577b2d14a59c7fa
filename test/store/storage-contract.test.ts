/**
 * The storage contract: local disk and S3 (a real s3rver process) pass the identical suite.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LocalStorage } from "../../src/store/local.ts";
import { S3Storage } from "../../src/store/s3.ts";
import { MissingObjectError, putStream, StorageError, type Storage } from "../../src/store/storage.ts";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/nix.ts";
import { S3_BUCKET, S3_KEY, S3_SECRET, startS3, type TestS3 } from "../helpers/s3.ts";

let s3: TestS3;

beforeAll(async () => {
  s3 = await startS3();
});

afterAll(async () => {
  await s3?.stop();
});

const MiB = 1024 * 1024;

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

const backends: Record<string, () => Promise<Storage>> = {
  local: async () => {
    const local = new LocalStorage(tempDir("garret-storage-"));
    await local.init();
    return local;
  },
  s3: async () => {
    const storage = new S3Storage({
      bucket: S3_BUCKET, region: "us-east-1", endpoint: s3.endpoint, forcePathStyle: true,
      prefix: `t${Math.random().toString(36).slice(2)}/`, accessKeyId: S3_KEY, secretAccessKey: S3_SECRET,
      partSize: 5 * MiB, maxAttempts: 2, redirectTtl: 60,
    });
    await storage.init();
    return storage;
  },
};

/** Each backend made unusable: a local root that is gone, an S3 bucket that does not exist. */
const broken: Record<string, () => Promise<Storage>> = {
  local: async () => {
    const dir = tempDir("garret-storage-");
    const local = new LocalStorage(dir);
    await local.init();
    rmSync(dir, { recursive: true, force: true });
    return local;
  },
  s3: async () => new S3Storage({
    bucket: "garret-no-such-bucket", region: "us-east-1", endpoint: s3.endpoint, forcePathStyle: true,
    prefix: "", accessKeyId: S3_KEY, secretAccessKey: S3_SECRET, partSize: 5 * MiB, maxAttempts: 1, redirectTtl: 60,
  }),
};

for (const [name, make] of Object.entries(backends)) {
  describe(`storage contract: ${name}`, () => {
    let storage: Storage;
    beforeAll(async () => {
      storage = await make();
    });

    test("a written object is invisible until commit, then reads back whole and by range", async () => {
      const data = random(300_000);
      const w = await storage.createWriter("packs/a.pack");
      await w.write(data.subarray(0, 100_000));
      await w.write(data.subarray(100_000));
      expect(await storage.exists("packs/a.pack")).toBe(false);
      await w.commit();
      expect(w.bytesWritten).toBe(data.length);
      expect(await storage.size("packs/a.pack")).toBe(data.length);
      expect(Buffer.from(await storage.read("packs/a.pack")).equals(Buffer.from(data))).toBe(true);
      const part = await storage.read("packs/a.pack", { offset: 12_345, length: 100_000 });
      expect(Buffer.from(part).equals(Buffer.from(data.subarray(12_345, 112_345)))).toBe(true);
    });

    test("objects larger than a part stream up in several parts", async () => {
      const data = random(12 * MiB + 17);
      const written = await putStream(storage, "packs/big.pack", (async function* () {
        for (let i = 0; i < data.length; i += MiB) yield data.subarray(i, Math.min(data.length, i + MiB));
      })());
      expect(written).toBe(data.length);
      const tail = await storage.read("packs/big.pack", { offset: data.length - 1000, length: 1000 });
      expect(Buffer.from(tail).equals(Buffer.from(data.subarray(data.length - 1000)))).toBe(true);
      expect(await storage.size("packs/big.pack")).toBe(data.length);
    });

    test("abort leaves nothing behind", async () => {
      const w = await storage.createWriter("packs/aborted.pack");
      await w.write(random(6 * MiB));
      await w.abort();
      expect(await storage.exists("packs/aborted.pack")).toBe(false);
    });

    test("missing objects: read fails with MissingObjectError, size is null, delete is done", async () => {
      expect(await storage.size("packs/nothing.pack")).toBeNull();
      await expect(storage.read("packs/nothing.pack")).rejects.toBeInstanceOf(MissingObjectError);
      await expect(storage.read("packs/nothing.pack", { offset: 0, length: 10 })).rejects.toBeInstanceOf(MissingObjectError);
      await storage.delete("packs/nothing.pack");
    });

    test("a range past the end fails instead of returning short data", async () => {
      await putStream(storage, "packs/short.pack", (async function* () { yield random(1000); })());
      await expect(storage.read("packs/short.pack", { offset: 900, length: 200 })).rejects.toBeInstanceOf(StorageError);
    });

    test("delete and deleteMany remove objects", async () => {
      const keys = Array.from({ length: 5 }, (_, i) => `packs/del-${i}.pack`);
      for (const k of keys) await putStream(storage, k, (async function* () { yield random(10); })());
      await storage.delete(keys[0]!);
      expect(await storage.exists(keys[0]!)).toBe(false);
      await storage.deleteMany([...keys.slice(1), "packs/never-existed.pack"]);
      for (const k of keys) expect(await storage.exists(k)).toBe(false);
    });

    test("put stores pieces back to back as one object, also under a directory not made yet", async () => {
      const pieces = [random(1000), random(70_000), new Uint8Array(0), random(3)];
      const all = Buffer.concat(pieces);
      expect(await storage.put("packs/new-dir/p.pack", pieces)).toBe(all.length);
      expect(await storage.size("packs/new-dir/p.pack")).toBe(all.length);
      expect(Buffer.from(await storage.read("packs/new-dir/p.pack")).equals(all)).toBe(true);
      const slice = await storage.read("packs/new-dir/p.pack", { offset: 999, length: 2 });
      expect(Buffer.from(slice).equals(all.subarray(999, 1001))).toBe(true);
    });

    test("check resolves while the backend is usable and fails with StorageError when it is not", async () => {
      await storage.check();
      const gone = await broken[name]!();
      await expect(gone.check()).rejects.toBeInstanceOf(StorageError);
    });

    test("keys that could escape are refused", async () => {
      for (const key of ["../x", "packs/../../x", "/abs", "a//b", "", "packs/.hidden"]) {
        await expect(storage.createWriter(key)).rejects.toBeInstanceOf(StorageError);
        await expect(storage.put(key, [random(1)])).rejects.toBeInstanceOf(StorageError);
      }
    });
  });
}

describe("local put", () => {
  test("a put that fails leaves neither the object nor a temp file", async () => {
    const dir = tempDir("garret-storage-");
    const local = new LocalStorage(dir);
    await local.init();
    // A file where the pack's directory should be: the rename into place fails after the bytes
    // were written and synced.
    writeFileSync(join(dir, "packs"), "in the way");
    await expect(local.put("packs/x.pack", [random(10)])).rejects.toThrow();
    expect(existsSync(join(dir, "packs/x.pack"))).toBe(false);
    expect(readdirSync(join(dir, ".tmp"))).toEqual([]);
  });
});
