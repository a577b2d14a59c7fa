/**
 * Threat (issue 12): a decision made on what was read before an await, written after it. Here the
 * world changes exactly in that gap (the store is wrapped so a concurrent writer acts the moment
 * the service reads): the write must see the change, not the stale read.
 */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { openTestMetaStore } from "../helpers/db.ts";
import type { MetaStore, ObjectMeta } from "../../src/db/types.ts";
import type { Garret } from "../../src/cache/context.ts";
import { deletePath, pinPath } from "../../src/cache/pins.ts";
import { missingPaths } from "../../src/cache/paths.ts";
import type { TokenClaims } from "../../src/auth/token.ts";
import { tempDir } from "../helpers/nix.ts";

const ADMIN: TokenClaims = { sub: "admin", exp: 2 ** 40, caches: { "*": { r: 1, w: 1, d: 1, cr: 1 } } };
const h = (c: string): string => c.repeat(32);
const opened: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of opened.splice(0)) await close();
});

/** A store on the suite's engine (SQLite, or PostgreSQL with GARRET_TEST_DATABASE_URL). */
async function storeWithCache(): Promise<{ meta: MetaStore; add(c: string, refs?: string[]): Promise<void> }> {
  const store = await openTestMetaStore();
  const { meta } = store;
  opened.push(store.close);
  const cache = await meta.createCache({
    name: "c", isPublic: false, storeDir: "/nix/store", priority: 41, upstreamCacheKeyNames: [], signingKey: "k:x", retentionPeriod: null,
  });
  const add = async (c: string, refs: string[] = []): Promise<void> => {
    const object: ObjectMeta = {
      storePathHash: h(c), storePath: `/nix/store/${h(c)}-${c}`, references: refs.map((r) => `${h(r)}-${r}`), system: null,
      deriver: null, ca: null, sigs: [], serverSig: null, serverSigKey: null, createdBy: null,
    };
    await meta.commitUpload({ packs: [], newChunks: [], chunkHashes: [], narHash: c.repeat(64), narSize: 8, cache, object });
  };
  return { meta, add };
}

/** A Garret whose store runs `gap` (once) right after the service's first call of `method`. */
function withGap(meta: MetaStore, method: keyof MetaStore, gap: () => Promise<void>): Garret {
  let fired = false;
  const wrapped = new Proxy(meta, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        const result = await value.apply(target, args);
        if (key === method && !fired) {
          fired = true;
          await gap();
        }
        return result;
      };
    },
  });
  return { meta: wrapped, publicUrl: "http://x" } as unknown as Garret;
}

test("a path deleted while a pin is being made is not pinned", async () => {
  const { meta, add } = await storeWithCache();
  await add("a");
  const cache = (await meta.getCache("c"))!;
  const g = withGap(meta, "getObject", async () => {
    await meta.expireObjects(cache.id, (objects) => objects.map((o) => o.id));
  });
  await expect(pinPath(g, ADMIN, "c", "release", { store_path: `/nix/store/${h("a")}-a` })).rejects.toThrow(/does not hold/);
  expect(await meta.listPins(cache.id)).toEqual([]);
});

test("a referrer pushed while a delete is decided is seen: the cache keeps no path with a missing reference", async () => {
  const { meta, add } = await storeWithCache();
  await add("a");
  const cache = (await meta.getCache("c"))!;
  const g = withGap(meta, "listPins", () => add("b", ["a"]));
  await deletePath(g, ADMIN, "c", h("a"), false).catch((err: Error) => expect(err.message).toContain("referenced by 1 other path"));
  const missing = await meta.missingPaths(cache.id, [h("a"), h("b")]);
  // Either nothing was deleted (the referrer was seen) or both went; never b without a.
  expect(missing.includes(h("a")) && !missing.includes(h("b"))).toBe(false);
});

test("a path answered present to a pusher is not expired before its access is on record (get-missing-paths)", async () => {
  const { meta, add } = await storeWithCache();
  await add("a");
  const cache = (await meta.getCache("c"))!;
  const now = Math.floor(Date.now() / 1000);
  await meta.touchObjects(cache.id, [h("a")], now - 10 * 86400);
  // The collector's retention runs the moment the service has read: paths idle for a day go.
  const g = withGap(meta, "missingPaths", async () => {
    await meta.expireObjects(cache.id, (objects) => objects.filter((o) => o.lastAccessedAt < now - 86400).map((o) => o.id));
  });
  const asked = [h("a"), h("z")];
  const { missing_paths } = await missingPaths(g, ADMIN, { cache: "c", store_path_hashes: asked });
  const present = asked.filter((x) => !missing_paths.includes(x));
  expect(present).toEqual([h("a")]);
  // The pusher will reference what it was told is there: it must still be there.
  expect(await meta.missingPaths(cache.id, present)).toEqual([]);
});

test("get-missing-paths rewrites only accesses older than its granularity, a 24th of a short retention period", async () => {
  const { meta, add } = await storeWithCache();
  await add("a");
  await add("b");
  const cache = (await meta.getCache("c"))!;
  // 240 s retention: accesses within the last 10 s are fresh enough, older ones are rewritten.
  await meta.updateCache(cache, { retentionPeriod: 240 });
  const now = Math.floor(Date.now() / 1000);
  await meta.touchObjects(cache.id, [h("a")], now - 5);
  await meta.touchObjects(cache.id, [h("b")], now - 60);
  const g = { meta, publicUrl: "http://x" } as unknown as Garret;
  expect((await missingPaths(g, ADMIN, { cache: "c", store_path_hashes: [h("a"), h("b")] })).missing_paths).toEqual([]);
  const seen = new Map<string, number>();
  await meta.simulate(async (tx) => tx.expireObjects(cache.id, (objects) => {
    for (const o of objects) seen.set(o.storePathHash, o.lastAccessedAt);
    return [];
  }));
  expect(seen.get(h("a"))).toBe(now - 5);
  expect(seen.get(h("b"))!).toBeGreaterThanOrEqual(now);
});
