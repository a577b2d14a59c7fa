/**
 * The metadata contract: SQLite and PostgreSQL (a real server, see test/helpers/pg.ts) pass the
 * identical suite. Two stores opened on one database stand for two replicas.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { openMetaStore, parseDatabaseUrl, DatabaseUnavailable } from "../../src/db/open.ts";
import { MIGRATIONS, PG_MIGRATIONS } from "../../src/db/migrations.ts";
import { PG_CACHE_RECORD_MS, PostgresMetaStore } from "../../src/db/postgres.ts";
import { CacheChanged, StagingGone, type CacheRecord, type CacheStats, type DailyBytes, type MetaStore, type UploadCommit } from "../../src/db/types.ts";
import * as dash from "../../src/db/dashboard-sql.ts";
import { Database } from "bun:sqlite";
import { SQL } from "bun";
import { tempDir } from "../helpers/nix.ts";
import { freshPgDatabase } from "../helpers/pg.ts";

const opened: MetaStore[] = [];

async function close(m: MetaStore): Promise<void> {
  if (m instanceof PostgresMetaStore) await m.end();
  else m.close();
}

afterAll(async () => {
  for (const m of opened.splice(0)) await close(m);
});

/** The dashboard's figures counted from the paths themselves, as the counters must hold them. */
async function recount(url: string): Promise<{ stats: Map<number, CacheStats>; daily: Map<number, DailyBytes[]> }> {
  type R = Record<string, number | string | null>;
  let stats: R[];
  let daily: R[];
  const db = parseDatabaseUrl(url);
  if (db.engine === "sqlite") {
    const s = new Database(db.path, { readonly: true });
    [stats, daily] = [s.query(dash.RECOUNT_STATS).all() as R[], s.query(dash.RECOUNT_DAILY).all() as R[]];
    s.close();
  } else {
    const pg = new SQL({ url: db.url, max: 1 });
    [stats, daily] = [await pg.unsafe(dash.RECOUNT_STATS) as R[], await pg.unsafe(dash.RECOUNT_DAILY) as R[]];
    await pg.close();
  }
  const byCache = new Map<number, DailyBytes[]>();
  for (const r of daily) {
    const list = byCache.get(Number(r.cache_id)) ?? [];
    list.push(dash.toDaily(r as Parameters<typeof dash.toDaily>[0]));
    byCache.set(Number(r.cache_id), list);
  }
  return { stats: new Map(stats.map((r) => [Number(r.cache_id), dash.toCacheStats(r as dash.CountersRow)])), daily: byCache };
}

/** A fresh database of the engine: its URL. */
const engines: Record<string, () => Promise<string>> = {
  sqlite: async () => `sqlite://${join(tempDir("garret-meta-"), "garret.db")}`,
  postgres: () => freshPgDatabase(),
};

async function open(url: string): Promise<MetaStore> {
  const m = await openMetaStore(url, { poolSize: 4 });
  opened.push(m);
  return m;
}

const hex = (n: number, salt = "") => new Bun.CryptoHasher("sha256").update(`${salt}${n}`).digest("hex");

const newCache = (name: string) => ({
  name, isPublic: false, storeDir: "/nix/store", priority: 41, upstreamCacheKeyNames: ["cache.nixos.org-1"],
  signingKey: "k:secret", retentionPeriod: null,
});

/** A commit of a NAR of `chunks` chunks, all new, stored in a fresh pack. */
async function upload(m: MetaStore, cache: CacheRecord, pathHash: string, narSalt: string, chunks: number): Promise<UploadCommit> {
  const packId = await m.createPendingPack(`packs/${crypto.randomUUID()}`);
  const hashes = Array.from({ length: chunks }, (_, i) => hex(i, narSalt));
  return {
    packs: [{ id: packId, size: chunks * 100 }],
    newChunks: hashes.map((hash, i) => ({ hash, size: 1000, compression: "zstd", packId, offset: i * 100, storedSize: 100, heals: false })),
    chunkHashes: hashes, narHash: hex(0, `nar${narSalt}`), narSize: chunks * 1000,
    cache: { id: cache.id, name: cache.name, createdAt: cache.createdAt },
    object: {
      storePathHash: pathHash, storePath: `/nix/store/${pathHash}-x`, references: [], system: null, deriver: null,
      ca: null, sigs: [], serverSig: null, serverSigKey: null, createdBy: "test",
    },
  };
}

const pathHash = (i: number) => `${String(i).padStart(8, "0")}${"a".repeat(24)}`;

test("both dialects have the same number of migrations", () => {
  expect(PG_MIGRATIONS.length).toBe(MIGRATIONS.length);
});

test("a bad database URL or an unreachable server is a DatabaseUnavailable", async () => {
  expect(() => parseDatabaseUrl("mysql://x")).toThrow(DatabaseUnavailable);
  expect(() => parseDatabaseUrl("sqlite://")).toThrow(DatabaseUnavailable);
  expect(openMetaStore("postgres://nobody@127.0.0.1:1/none")).rejects.toBeInstanceOf(DatabaseUnavailable);
});

for (const [engine, fresh] of Object.entries(engines)) {
  describe(`metadata contract: ${engine}`, () => {
    test("caches: create, conditional update and delete, ids never reused", async () => {
      const m = await open(await fresh());
      const a = await m.createCache(newCache("a"));
      expect(a.name).toBe("a");
      expect(await m.updateCache(a, { isPublic: true })).toMatchObject({ isPublic: true });
      expect(await m.updateCache({ ...a, createdAt: a.createdAt - 1 }, { priority: 1 })).toBeNull();
      expect(await m.deleteCache({ ...a, createdAt: a.createdAt - 1 })).toBe(false);
      expect(await m.deleteCache(a)).toBe(true);
      const b = await m.createCache(newCache("a"));
      expect(b.id).toBeGreaterThan(a.id);
      expect((await m.listCaches()).map((c) => c.name)).toEqual(["a"]);
    });

    test("dedup as an uploader sees it: only NARs and chunks the given caches use count", async () => {
      const m = await open(await fresh());
      const [a, b] = [await m.createCache(newCache("seen-a")), await m.createCache(newCache("seen-b"))];
      const first = await upload(m, a, pathHash(1), "shared", 3);
      await m.commitUpload(first);
      // A second NAR in b: two of the first NAR's chunks, and one new one.
      const second = await upload(m, b, pathHash(2), "other", 1);
      const chunkHashes = [first.chunkHashes[0]!, first.chunkHashes[1]!, second.chunkHashes[0]!];
      const { narId } = await m.commitUpload({ ...second, chunkHashes, narSize: 3000 });
      expect(await m.narInCaches(first.narHash, [a.id])).toBe(true);
      expect(await m.narInCaches(first.narHash, [b.id])).toBe(false);
      expect(await m.narInCaches(first.narHash, [])).toBe(false);
      // Its stored size is its own; what it shares counts only through the caches given.
      expect(await m.narSharing(narId, [a.id, b.id])).toEqual({ fileSize: 300, unsharedBytes: 1000 });
      expect(await m.narSharing(narId, [b.id])).toEqual({ fileSize: 300, unsharedBytes: 3000 });
      expect(await m.narSharing(narId, [])).toEqual({ fileSize: 300, unsharedBytes: 3000 });
      // Chunks say whether the given caches use them; asked without caches, they say nothing.
      const shown = async (cacheIds?: number[]) => [...(await m.findChunks([...first.chunkHashes, hex(9, "absent")], cacheIds))]
        .map(([hash, c]) => [first.chunkHashes.indexOf(hash), c.shown]).sort();
      expect(await shown([a.id])).toEqual([[0, true], [1, true], [2, true]]);
      expect(await shown([b.id])).toEqual([[0, true], [1, true], [2, false]]);
      expect(await shown([])).toEqual([[0, false], [1, false], [2, false]]);
      expect(await shown()).toEqual([[0, undefined], [1, undefined], [2, undefined]]);
    });

    test("an upload commits once, is served, and missing paths are answered in bulk", async () => {
      const m = await open(await fresh());
      const cache = await m.createCache(newCache("c"));
      const commit = await upload(m, cache, pathHash(1), "n1", 50);
      const r = await m.commitUpload(commit);
      expect(r.narExisted).toBe(false);
      expect(await m.findNar(commit.narHash)).toMatchObject({ id: r.narId, numChunks: 50, state: "valid" });
      const chunks = await m.narChunks(r.narId);
      expect(chunks.map((c) => c.hash)).toEqual(commit.chunkHashes);
      expect(chunks[3]).toMatchObject({ offset: 300, storedSize: 100, size: 1000, compression: "zstd" });
      const served = await m.narToServe(cache.id, commit.narHash);
      expect(served).toMatchObject({ narId: r.narId, narSize: 50_000, fileSize: 5000, compression: "zstd", storePathHash: pathHash(1) });
      expect(await m.getObject(cache.id, pathHash(1))).toMatchObject({ narHash: commit.narHash, fileSize: 5000, references: [] });
      expect((await m.findChunks([commit.chunkHashes[0]!])).get(commit.chunkHashes[0]!)).toMatchObject({ size: 1000, storedSize: 100, offset: 0, compression: "zstd" });
      const batch = await m.findChunks([...commit.chunkHashes, hex(1, "absent")]);
      expect(batch.size).toBe(50);
      expect(batch.get(commit.chunkHashes[7]!)).toMatchObject({ size: 1000, storedSize: 100, offset: 700 });
      const asked = Array.from({ length: 10_000 }, (_, i) => pathHash(i));
      const missing = await m.missingPaths(cache.id, asked);
      expect(missing.length).toBe(9_999);
      expect(missing).not.toContain(pathHash(1));
      // Answering with touchAt records the access of what is present, in the same statement.
      expect((await m.missingPaths(cache.id, asked, 12345)).length).toBe(9_999);
      const accessTimes = async (): Promise<number[]> => {
        const seen: number[] = [];
        await m.simulate(async (tx) => tx.expireObjects(cache.id, (objects) => {
          seen.push(...objects.map((o) => o.lastAccessedAt));
          return [];
        }));
        return seen;
      };
      expect(await accessTimes()).toEqual([12345]);
      // With staleBefore, an access at or after it is fresh enough: answered present, not rewritten.
      expect(await m.missingPaths(cache.id, asked, 20000, 12345)).not.toContain(pathHash(1));
      expect(await accessTimes()).toEqual([12345]);
      expect(await m.missingPaths(cache.id, asked, 20000, 12346)).not.toContain(pathHash(1));
      expect(await accessTimes()).toEqual([20000]);
      // The same NAR again under another path: reused, not stored twice.
      const again = await m.commitUpload({ ...(await upload(m, cache, pathHash(2), "n1", 50)), newChunks: [] });
      expect(again).toEqual({ narId: r.narId, narExisted: true });
    });

    test("ping answers; pushes keep their provenance; the audit log keeps order", async () => {
      const m = await open(await fresh());
      await m.ping();
      const cache = await m.createCache(newCache("prov"));
      const a = await upload(m, cache, pathHash(1), "p1", 1);
      a.object.createdBy = "alice";
      a.object.pushedByToken = "jti-1";
      a.object.pushedFrom = "10.0.0.1";
      await m.commitUpload(a);
      await m.commitUpload(await upload(m, cache, pathHash(2), "p2", 1)); // sub "test", no token id, no address
      const all = await m.pushLog(cache.id, {});
      expect(all.length).toBe(2);
      const first = all.find((p) => p.storePathHash === pathHash(1))!;
      expect(first).toMatchObject({ sub: "alice", tokenId: "jti-1", client: "10.0.0.1", storePath: `/nix/store/${pathHash(1)}-x` });
      expect(typeof first.pushedAt).toBe("number");
      expect(all.find((p) => p.storePathHash === pathHash(2))).toMatchObject({ sub: "test", tokenId: null, client: null });
      expect((await m.pushLog(cache.id, { sub: "alice" })).map((p) => p.storePathHash)).toEqual([pathHash(1)]);
      expect((await m.pushLog(cache.id, { tokenId: "jti-1" })).map((p) => p.storePathHash)).toEqual([pathHash(1)]);
      expect(await m.pushLog(cache.id, { sub: "alice", tokenId: "other" })).toEqual([]);
      // expiry sees provenance, so a purge can select by it in its transaction
      let seen: { createdBy?: string | null; pushedByToken?: string | null }[] = [];
      await m.expireObjects(cache.id, (objects) => {
        seen = objects;
        return [];
      });
      expect(seen.map((o) => [o.createdBy, o.pushedByToken]).sort()).toEqual([["alice", "jti-1"], ["test", null]]);
      await m.recordAudit({ actor: "root", action: "cache.create", target: "prov", detail: null });
      await m.recordAudit({ actor: "root", action: "cache.purge", target: "prov", detail: "uploaded_by=alice" });
      const log = await m.auditLog();
      expect(log.map((e) => [e.actor, e.action, e.target, e.detail])).toEqual([
        ["root", "cache.create", "prov", null], ["root", "cache.purge", "prov", "uploaded_by=alice"],
      ]);
      expect(log[0]!.id).toBeLessThan(log[1]!.id);
      expect(typeof log[0]!.at).toBe("number");
    });

    test("a commit into a cache destroyed meanwhile fails with CacheChanged", async () => {
      const m = await open(await fresh());
      const cache = await m.createCache(newCache("gone"));
      const commit = await upload(m, cache, pathHash(1), "g", 3);
      await m.deleteCache(cache);
      await m.createCache(newCache("gone"));
      expect(m.commitUpload(commit)).rejects.toBeInstanceOf(CacheChanged);
    });

    test("two replicas committing the same NAR at once store it once", async () => {
      const url = await fresh();
      const a = await open(url);
      const b = await open(url);
      const cache = await a.createCache(newCache("twin"));
      for (let round = 0; round < 5; round++) {
        const [ca, cb] = [await upload(a, cache, pathHash(round * 2), `r${round}`, 40), await upload(b, cache, pathHash(round * 2 + 1), `r${round}`, 40)];
        const [ra, rb] = await Promise.all([a.commitUpload(ca), b.commitUpload(cb)]);
        expect(ra.narId).toBe(rb.narId);
        expect([ra.narExisted, rb.narExisted].sort()).toEqual([false, true]);
        expect((await a.narChunks(ra.narId)).length).toBe(40);
      }
      expect((await a.missingPaths(cache.id, Array.from({ length: 10 }, (_, i) => pathHash(i)))).length).toBe(0);
    });

    test("NAR download answers and objects: a push on another replica is served at once, a deletion through this store at once, through another within the bound", async () => {
      const url = await fresh();
      const a = await open(url);
      const b = await open(url);
      const cache = await a.createCache(newCache("served"));
      const first = await upload(a, cache, pathHash(1), "s1", 3);
      expect(await b.narToServe(cache.id, first.narHash)).toBeNull();
      expect(await b.getObject(cache.id, pathHash(1))).toBeNull();
      await a.commitUpload(first);
      // Misses are not kept: B serves what A committed on the next request.
      const served = await b.narToServe(cache.id, first.narHash);
      expect(served).toMatchObject({ narSize: 3000, fileSize: 300, storePathHash: pathHash(1) });
      expect(await b.getObject(cache.id, pathHash(1))).toMatchObject({ narHash: first.narHash, serverSig: null });
      // Pushes through B itself keep B's answer.
      await b.commitUpload(await upload(b, cache, pathHash(2), "s2", 2));
      expect(await b.narToServe(cache.id, first.narHash)).toEqual(served);
      // A signature written through B is seen by B at once; what a caller changes is its own.
      await b.updateServerSig(cache.id, pathHash(1), "sig", "key");
      const signed = (await b.getObject(cache.id, pathHash(1)))!;
      expect(signed).toMatchObject({ serverSig: "sig", serverSigKey: "key" });
      signed.sigs.push("mine");
      expect((await b.getObject(cache.id, pathHash(1)))!.sigs).toEqual([]);
      // Extra signatures (nix store sign) written through B are seen by B at once.
      const before = (await b.getObject(cache.id, pathHash(1)))!;
      expect(await b.setExtraSigs(cache.id, pathHash(1), { narId: before.narId, sigs: before.sigs }, ["k-1:c2ln"])).toBe(true);
      expect((await b.getObject(cache.id, pathHash(1)))!.sigs).toEqual(["k-1:c2ln"]);
      // Over what another signer or a push changed since it was read: refused, nothing written.
      expect(await b.setExtraSigs(cache.id, pathHash(1), { narId: before.narId, sigs: before.sigs }, ["k-2:c2ln"])).toBe(false);
      expect(await b.setExtraSigs(cache.id, pathHash(1), { narId: before.narId + 1000, sigs: ["k-1:c2ln"] }, ["k-2:c2ln"])).toBe(false);
      expect((await b.getObject(cache.id, pathHash(1)))!.sigs).toEqual(["k-1:c2ln"]);
      // Deleted through B: gone at once on B.
      expect(await b.expireObjects(cache.id, (objects) => objects.filter((o) => o.storePathHash === pathHash(1)).map((o) => o.id))).toBe(1);
      expect(await b.narToServe(cache.id, first.narHash)).toBeNull();
      expect(await b.getObject(cache.id, pathHash(1))).toBeNull();
      // Deleted through A while B holds an answer: gone on B within PG_CACHE_RECORD_MS.
      const second = await upload(a, cache, pathHash(3), "s3", 2);
      await a.commitUpload(second);
      expect(await b.narToServe(cache.id, second.narHash)).not.toBeNull();
      expect(await b.getObject(cache.id, pathHash(3))).not.toBeNull();
      const deleted = performance.now();
      expect(await a.expireObjects(cache.id, (objects) => objects.filter((o) => o.storePathHash === pathHash(3)).map((o) => o.id))).toBe(1);
      expect(await a.narToServe(cache.id, second.narHash)).toBeNull();
      await Bun.sleep(Math.max(0, PG_CACHE_RECORD_MS + 50 - (performance.now() - deleted)));
      expect(await b.narToServe(cache.id, second.narHash)).toBeNull();
      expect(await b.getObject(cache.id, pathHash(3))).toBeNull();
    });

    test("one collector at a time across replicas", async () => {
      const url = await fresh();
      const a = await open(url);
      const b = await open(url);
      const t = Math.floor(Date.now() / 1000);
      expect(await a.lockGc("A", t, 600)).toBe(true);
      expect(await b.lockGc("B", t, 600)).toBe(false);
      expect(await a.lockGc("A", t, 600)).toBe(true);
      await a.unlockGc("A");
      expect(await b.lockGc("B", t, 600)).toBe(true);
      await b.unlockGc("B");
    });

    test("simulate rolls back what was written through its handle", async () => {
      const m = await open(await fresh());
      const cache = await m.createCache(newCache("sim"));
      await m.commitUpload(await upload(m, cache, pathHash(1), "s", 5));
      const n = await m.simulate(async (tx) => {
        const gone = await tx.expireObjects(cache.id, (objects) => objects.map((o) => o.id));
        await tx.deleteUnreferencedNars();
        await tx.markUnreferencedChunks();
        expect(await tx.getObject(cache.id, pathHash(1))).toBeNull();
        return gone;
      });
      expect(n).toBe(1);
      expect(await m.getObject(cache.id, pathHash(1))).not.toBeNull();
      expect((await m.findChunks([hex(0, "s")])).size).toBe(1);
    });

    test("expiry, pins, and chunk collection behind live leases", async () => {
      const m = await open(await fresh());
      const cache = await m.createCache(newCache("gc"));
      const commit = await upload(m, cache, pathHash(1), "e", 4);
      await m.commitUpload(commit);
      expect(await m.addPin(cache.id, { name: "p", storePathHash: pathHash(9), storePath: "/nix/store/x", createdBy: null })).toBeNull();
      expect(await m.addPin(cache.id, { name: "p", storePathHash: pathHash(1), storePath: commit.object.storePath, createdBy: null }))
        .toMatchObject({ name: "p" });
      expect((await m.listPins(cache.id)).length).toBe(1);
      let seenPins = 0;
      expect(await m.expireObjects(cache.id, (objects, pins) => {
        seenPins = pins.length;
        return objects.map((o) => o.id);
      })).toBe(1);
      expect(seenPins).toBe(1);
      expect(await m.deleteUnreferencedNars()).toBe(1);
      const t = Math.floor(Date.now() / 1000);
      const lease = await m.acquireUploadLease(t, 600);
      expect(await m.markUnreferencedChunks()).toBe(4);
      // A live lease issued before the marking: the chunks stay.
      expect((await m.sweepChunks(t)).count).toBe(0);
      await m.releaseUploadLease(lease);
      expect(await m.sweepChunks(t)).toEqual({ count: 4, bytes: 400 });
      expect(await m.markEmptyPacks(t)).toBe(1);
      expect((await m.packsToDelete(t)).length).toBe(1);
    });

    test("damaged chunks hide their NARs", async () => {
      const m = await open(await fresh());
      const cache = await m.createCache(newCache("d"));
      const r = await m.commitUpload(await upload(m, cache, pathHash(1), "d", 3));
      const chunk = (await m.narChunks(r.narId))[1]!;
      expect(await m.markChunksDamaged([chunk.chunkId])).toBe(1);
      expect(await m.getObject(cache.id, pathHash(1))).toBeNull();
      expect(await m.missingPaths(cache.id, [pathHash(1)])).toEqual([pathHash(1)]);
      expect(await m.visibleObjects()).toEqual([]);
    });

    test("the dashboard's counters equal a recount after uploads, re-pushes, hiding, healing, expiry, purge and destroy", async () => {
      const url = await fresh();
      const a = await open(url);
      const b = await open(url); // a second replica, committing at the same time as the first
      const one = await a.createCache(newCache("count-one"));
      const two = await a.createCache(newCache("count-two"));
      const check = async () => {
        const want = await recount(url);
        const stats = await a.allCacheStats();
        for (const cache of [one, two]) {
          const w = want.stats.get(cache.id) ?? { paths: 0, narBytes: 0, storedBytes: 0, lastPushAt: null };
          const got = stats.get(cache.id) ?? { paths: 0, narBytes: 0, storedBytes: 0, lastPushAt: null };
          expect({ paths: got.paths, narBytes: got.narBytes, storedBytes: got.storedBytes })
            .toEqual({ paths: w.paths, narBytes: w.narBytes, storedBytes: w.storedBytes });
          expect(await a.cacheStats(cache.id)).toEqual(got);
          // The latest push ever: never before the newest path still held.
          if (w.lastPushAt !== null) expect(got.lastPushAt!).toBeGreaterThanOrEqual(w.lastPushAt);
          expect(await a.cacheDailyBytes(cache.id, 0)).toEqual(want.daily.get(cache.id) ?? []);
        }
        return want;
      };
      // Paths 1 and 2 share a NAR; cache two holds that NAR too, under path 50.
      await a.commitUpload(await upload(a, one, pathHash(1), "shared", 3));
      await a.commitUpload(await upload(a, one, pathHash(2), "shared", 3));
      await a.commitUpload(await upload(a, one, pathHash(3), "three", 2));
      await a.commitUpload(await upload(a, two, pathHash(50), "shared", 3));
      expect((await check()).stats.get(one.id)!.paths).toBe(3);
      // Concurrent pushes from two replicas, new paths and the same path at once with different NARs.
      await Promise.all([
        ...Array.from({ length: 8 }, async (_, i) => a.commitUpload(await upload(a, one, pathHash(10 + i), `a${i}`, 2))),
        ...Array.from({ length: 8 }, async (_, i) => b.commitUpload(await upload(b, one, pathHash(20 + i), `b${i}`, 2))),
        ...Array.from({ length: 3 }, async (_, i) => (i % 2 ? a : b).commitUpload(await upload(i % 2 ? a : b, one, pathHash(30), `race${i}`, 1 + i))),
      ]);
      expect((await check()).stats.get(one.id)!.paths).toBe(20);
      // Re-pushes: the same path with the same NAR, and one path with a new NAR.
      await a.commitUpload(await upload(a, one, pathHash(1), "shared", 3));
      await b.commitUpload(await upload(b, one, pathHash(3), "three-again", 5));
      expect((await check()).stats.get(one.id)!.paths).toBe(20);
      // fsck hides the shared NAR: paths 1, 2 and 50 leave both caches' figures; a push heals it.
      const shared = (await a.getObject(one.id, pathHash(1)))!;
      await a.markChunksDamaged([(await a.narChunks(shared.narId))[0]!.chunkId]);
      expect((await check()).stats.get(two.id)).toBeUndefined();
      await b.commitUpload(await upload(b, two, pathHash(50), "shared", 3));
      expect((await check()).stats.get(one.id)!.paths).toBe(20);
      // Expiry (a few paths), then a purge of everything one replica pushed, racing a push of the other.
      await a.expireObjects(one.id, (objects) => objects.filter((o) => o.storePathHash <= pathHash(12)).map((o) => o.id));
      expect((await check()).stats.get(one.id)!.paths).toBe(14);
      await Promise.all([
        b.expireObjects(one.id, (objects) => objects.filter((o) => o.storePathHash.startsWith("0000002")).map((o) => o.id)),
        a.commitUpload(await upload(a, one, pathHash(40), "late", 2)),
      ]);
      expect((await check()).stats.get(one.id)!.paths).toBe(7);
      expect(await a.deleteCache(two)).toBe(true);
      await check();
      expect((await a.allCacheStats()).has(two.id)).toBe(false);
    });

    test("referrers: one cache's paths that name a path, kept with every push, expiry, destroy and the migration that fills them", async () => {
      const url = await fresh();
      let m = await open(url);
      const [a, b] = [await m.createCache(newCache("ra")), await m.createCache(newCache("rb"))];
      const base = (i: number) => `${pathHash(i)}-x`;
      const push = async (cache: CacheRecord, i: number, refs: number[], salt: string) => {
        const c = await upload(m, cache, pathHash(i), salt, 1);
        await m.commitUpload({ ...c, object: { ...c.object, references: refs.map(base) } });
      };
      await push(a, 1, [], "d1");
      await push(a, 2, [1], "d2");
      await push(a, 3, [1, 3], "d3"); // itself too, as Nix lists it
      await push(a, 4, [2], "d4");
      await push(b, 5, [1], "d5"); // another tenant's path naming the same one
      const referrers = async (cache: CacheRecord, i: number) => (await m.referrersOf(cache.id, base(i), 100)).map((o) => o.storePathHash);
      expect(await referrers(a, 1)).toEqual([pathHash(2), pathHash(3)]);
      expect(await referrers(a, 3)).toEqual([]);
      expect(await referrers(b, 1)).toEqual([pathHash(5)]);
      expect((await m.referrersOf(a.id, base(1), 1)).length).toBe(1);
      // Pushed again with other references: the old ones go, the new ones count.
      await push(a, 2, [4], "d2b");
      expect(await referrers(a, 1)).toEqual([pathHash(3)]);
      expect(await referrers(a, 4)).toEqual([pathHash(2)]);
      // A database from before the table: the migration fills it from the paths' references.
      await close(m);
      opened.splice(opened.indexOf(m), 1);
      const parsed = parseDatabaseUrl(url);
      const before = MIGRATIONS.findIndex((q) => q.includes("CREATE TABLE object_refs"));
      const downgrade = ["DROP TABLE object_refs", `UPDATE schema_version SET version = ${before}`];
      if (parsed.engine === "sqlite") {
        const db = new Database(parsed.path);
        for (const q of downgrade) db.exec(q);
        db.close();
      } else {
        const pg = new SQL({ url: parsed.url, max: 1 });
        for (const q of downgrade) await pg.unsafe(q);
        await pg.close();
      }
      m = await open(url);
      expect(await referrers(a, 1)).toEqual([pathHash(3)]);
      expect(await referrers(a, 4)).toEqual([pathHash(2)]);
      expect(await referrers(a, 3)).toEqual([]);
      expect(await referrers(b, 1)).toEqual([pathHash(5)]);
      // An expired referrer is no longer one; a destroyed cache's paths name nothing.
      await m.expireObjects(a.id, (objects) => objects.filter((o) => o.storePathHash === pathHash(3)).map((o) => o.id));
      expect(await referrers(a, 1)).toEqual([]);
      expect(await m.deleteCache(b)).toBe(true);
      expect(await referrers(b, 1)).toEqual([]);
    });

    test("native staging: quota checked in the insert, a replaced or undurable record is never published, expiry takes its packs", async () => {
      const url = await fresh();
      const [a, b] = [await open(url), await open(url)];
      const cache = await a.createCache(newCache("stage"));
      const ident = { id: cache.id, name: cache.name, createdAt: cache.createdAt };
      const at = Math.floor(Date.now() / 1000);
      const stage = async (m: MetaStore, file: string, salt: string, size: number, expiresAt = at + 3600) => {
        const commit = await upload(m, cache, pathHash(Number.parseInt(salt, 36) % 1000), salt, 2);
        const leaseId = await m.acquireUploadLease(at, 3600);
        const parts = { chunkHashes: commit.chunkHashes, newChunks: commit.newChunks, packs: commit.packs.map((p) => ({ ...p, key: `k${p.id}` })) };
        const r = await m.stageNar({ cacheId: cache.id, file, owner: "alice", leaseId, narHash: commit.narHash, narSize: size, parts, createdAt: at, expiresAt }, ident, 1000);
        return { r, commit, parts };
      };
      // Two replicas staging at once for one owner: both cannot fit in the last of the quota.
      const [x, y] = await Promise.all([stage(a, "x.nar.zst", "x1", 600), stage(b, "y.nar.zst", "y1", 600)]);
      expect([x.r, y.r].filter((r) => r !== null).length).toBe(1);
      const won = (x.r ? x : y);
      const wonFile = x.r ? "x.nar.zst" : "y.nar.zst";
      expect(await a.stagedBytes("alice", at)).toBe(600);
      // Not durable yet: found, but a commit naming it is refused.
      const found = (await b.findStagedNar(cache.id, wonFile, at))!;
      expect(found.durable).toBe(false);
      await expect(a.commitUpload({ ...won.commit, stagedId: found.id })).rejects.toBeInstanceOf(StagingGone);
      // Sent again: the new record replaces it, and the old one can no longer be marked durable.
      const again = await stage(b, wonFile, "z1", 500);
      expect(again.r!.replaced!.id).toBe(found.id);
      expect(await a.markStagedDurable(found.id, won.parts)).toBe(false);
      expect(await a.markStagedDurable(again.r!.id, again.parts)).toBe(true);
      expect((await a.findStagedNar(cache.id, wonFile, at))!.durable).toBe(true);
      const r = await a.commitUpload({ ...again.commit, stagedId: again.r!.id });
      expect(r.narExisted).toBe(false);
      // Published: consumed once, its room is back.
      await expect(b.commitUpload({ ...again.commit, stagedId: again.r!.id })).rejects.toBeInstanceOf(StagingGone);
      expect(await a.stagedBytes("alice", at)).toBe(0);
      // An orphan past its expiry: not found, not counted; the collector drops it and its own pack.
      const orphan = await stage(a, "o.nar.zst", "o1", 100, at - 1);
      expect(await a.findStagedNar(cache.id, "o.nar.zst", at)).toBeNull();
      expect(await a.stagedBytes("alice", at)).toBe(0);
      expect(await b.expireStagedNars(at)).toBe(1);
      const packId = orphan.commit.packs[0]!.id;
      expect((await a.packsToDelete(at)).map((p) => p.id)).toContain(packId);
      expect(await a.unstageNar(orphan.r!.id)).toBeNull();
    });
  });
}
