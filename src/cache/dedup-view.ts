/**
 * What an uploader is told about deduplication. Storage is one global store, but tenants must
 * learn nothing of each other's caches: an answer made from the global store ("Deduplicated",
 * frac_deduplicated, or the bytes the upload added) would confirm that some cache holds a NAR the
 * caller can rebuild, say a config file with a guessed secret in it, tried one guess at a time.
 * So an answer counts only what caches the caller may read held already, and repeats inside the
 * NAR itself. Operators still see the global figures (metrics, the server page). The same holds
 * for how long an upload takes: the ingest reuses only chunks these caches use (`shownIn`).
 */
import type { UploadAnswer } from "../api/attic.ts";
import type { CacheRecord } from "../db/types.ts";
import type { StagedNar } from "../store/ingest.ts";
import { effectivePermission, type Caller } from "./access.ts";
import type { Garret } from "./context.ts";

export interface DedupView {
  /** The answer once the upload committed NAR `narId`. */
  answer(narId: number): Promise<UploadAnswer>;
}

/**
 * The ids of the caches the caller may read: the only ones an upload may count as holding its
 * bytes already, in its answer and in how much work it does (see `Expected.shownIn`).
 */
export async function readableCaches(g: Garret, caller: Caller): Promise<number[]> {
  return (await cacheList(g)).filter((c) => effectivePermission(caller, c, c.name).pull).map((c) => c.id);
}

/**
 * The cache list behind readableCaches, read at most once per CACHE_LIST_MS and dropped as soon
 * as this process creates, configures or destroys a cache: every upload asks, and on a server of
 * 1000 caches the read took 0.45 ms (SQLite) to 1.2 ms (PostgreSQL). Another replica's change
 * shows within that time, as cache records do. Meanwhile a cache new there counts as unreadable
 * (its chunks are written again: more work, nothing told), and one just made private still
 * counts as readable (the caller could read it a moment ago).
 */
const CACHE_LIST_MS = 1000;
const cacheLists = new WeakMap<Garret, { at: number; caches: Promise<CacheRecord[]> }>();

function cacheList(g: Garret): Promise<CacheRecord[]> {
  const at = performance.now();
  const kept = cacheLists.get(g);
  if (kept && at - kept.at < CACHE_LIST_MS) return kept.caches;
  const caches = g.meta.listCaches();
  const entry = { at, caches };
  cacheLists.set(g, entry);
  caches.catch(() => {
    if (cacheLists.get(g) === entry) cacheLists.delete(g);
  });
  return caches;
}

/** After this process changed which caches there are, or who may read them. */
export function forgetCacheList(g: Garret): void {
  cacheLists.delete(g);
}

/**
 * Taken before the commit, which may make the NAR this caller's own: "Deduplicated" means a cache
 * the caller may read (`readable`, from readableCaches) had it before.
 */
export async function dedupViewOf(g: Garret, readable: number[], staged: StagedNar): Promise<DedupView> {
  // Nothing was found stored: the caller sent every byte, whatever else the store holds now.
  if (staged.dedupBytes === 0) {
    return { answer: async () => ({ kind: "Uploaded", file_size: staged.storedBytes, frac_deduplicated: 0 }) };
  }
  const seen = readable.length > 0 && await g.meta.narInCaches(staged.narHash, readable);
  return {
    async answer(narId) {
      const { fileSize, unsharedBytes } = await g.meta.narSharing(narId, readable);
      if (seen) return { kind: "Deduplicated", file_size: fileSize, frac_deduplicated: 1 };
      const frac = staged.narSize === 0 ? 0 : Math.max(0, 1 - unsharedBytes / staged.narSize);
      return { kind: "Uploaded", file_size: fileSize, frac_deduplicated: frac };
    },
  };
}
