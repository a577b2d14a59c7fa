/**
 * NAR download answers are kept between database changes (SqliteMetaStore.narToServe): a change
 * by the server's own connection or by any other (garret gc, fsck) is seen on the next request.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { SqliteMetaStore } from "../../src/db/sqlite.ts";
import { tempDir } from "../helpers/nix.ts";

const HASH = (c: string): string => c.repeat(64);

async function storeWithNar(): Promise<{ meta: SqliteMetaStore; path: string; cacheId: number }> {
  const path = join(tempDir("garret-served-"), "garret.db");
  const meta = new SqliteMetaStore(path);
  const cache = await meta.createCache({
    name: "c", isPublic: true, storeDir: "/nix/store", priority: 41, upstreamCacheKeyNames: [], signingKey: "k:x",
    retentionPeriod: null, quotaBytes: null,
  });
  const packId = await meta.createPendingPack("packs/p.pack");
  await meta.commitUpload({
    packs: [{ id: packId, size: 100 }],
    newChunks: [{ hash: HASH("a"), size: 200, compression: "zstd", packId, offset: 0, storedSize: 100, heals: false }],
    chunkHashes: [HASH("a")], narHash: HASH("a"), narSize: 200, cache,
    object: {
      storePathHash: "0".repeat(32), storePath: `/nix/store/${"0".repeat(32)}-x`, references: [], system: null,
      deriver: null, ca: null, sigs: [], serverSig: null, serverSigKey: null, createdBy: null,
    },
  });
  return { meta, path, cacheId: cache.id };
}

test("a kept answer is the same as a fresh one", async () => {
  const { meta, cacheId } = await storeWithNar();
  try {
    const first = await meta.narToServe(cacheId, HASH("a"));
    expect(first).toMatchObject({ narSize: 200, fileSize: 100, compression: "zstd" });
    expect(first!.chunks).toHaveLength(1);
    expect(await meta.narToServe(cacheId, HASH("a"))).toEqual(first);
    expect(await meta.narToServe(cacheId + 1, HASH("a"))).toBeNull(); // another cache does not see it
  } finally {
    meta.close();
  }
});

test("a deletion through the store is seen at once", async () => {
  const { meta, cacheId } = await storeWithNar();
  try {
    expect(await meta.narToServe(cacheId, HASH("a"))).not.toBeNull();
    expect(await meta.expireObjects(cacheId, (objects) => objects.map((o) => o.id))).toBe(1);
    expect(await meta.narToServe(cacheId, HASH("a"))).toBeNull();
  } finally {
    meta.close();
  }
});

test("a deletion by another connection (another process) is seen at once", async () => {
  const { meta, path, cacheId } = await storeWithNar();
  try {
    expect(await meta.narToServe(cacheId, HASH("a"))).not.toBeNull();
    const other = new Database(path);
    other.exec("PRAGMA busy_timeout = 5000");
    other.exec("DELETE FROM objects");
    other.close();
    expect(await meta.narToServe(cacheId, HASH("a"))).toBeNull();
  } finally {
    meta.close();
  }
});
