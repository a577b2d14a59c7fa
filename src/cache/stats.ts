import pkg from "../../package.json" with { type: "json" };
import { GarretError } from "../errors.ts";
import { hasAny, permissionFor } from "../auth/permissions.ts";
import type { CacheRecord, CacheStats, ObjectListing } from "../db/types.ts";
import { formatNixBase32 } from "../nix/hash.ts";
import { isValidStorePathHash } from "../nix/store-path.ts";
import { servedCompression } from "../store/compression.ts";
import { authorize, claimsOf, effectivePermission, type Caller } from "./access.ts";
import { cacheConfigView } from "./caches.ts";
import type { Garret } from "./context.ts";
import { narFileName } from "./paths.ts";
import type {
  CacheStatsAnswer, CacheStatsView, CachesAnswer, PathAnswer, PathSummary, PathsAnswer, ServerStatsAnswer,
} from "../api/garret.ts";

/** The dashboard's reads (issue 14): what caches hold and what deduplication saves. Same access rules as every read. */

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;
/** The chart covers this much history, one point per UTC day. */
const HISTORY_SECONDS = 90 * 86400;
/** A closure walk stops here: the size is then a lower bound (closure_paths says how far it got). */
const CLOSURE_MAX = 10_000;
const REFERRERS_MAX = 1000;
/** Search text: characters of store path names and hashes only (a prefix of either; see listObjectsSql). */
const QUERY = /^[A-Za-z0-9+\-._?=]{1,100}$/;

const noSuchObject = (): GarretError => new GarretError("NoSuchObject", "The requested object does not exist.");

function statsView(s: CacheStats): CacheStatsView {
  return {
    paths: s.paths, nar_bytes: s.narBytes, stored_bytes: s.storedBytes,
    dedup_ratio: s.storedBytes > 0 ? s.narBytes / s.storedBytes : 1, last_push_at: s.lastPushAt,
  };
}

const EMPTY: CacheStats = { paths: 0, narBytes: 0, storedBytes: 0, lastPushAt: null };

/** Every cache the caller may see (any permission, or public), with its figures: two reads whatever their number. */
export async function listVisibleCaches(g: Garret, caller: Caller): Promise<CachesAnswer> {
  const [all, figures] = await Promise.all([g.meta.listCaches(), g.meta.allCacheStats()]);
  const visible = all.filter((c) => hasAny(effectivePermission(caller, c, c.name)));
  const caches = visible.map((c) => ({
    name: c.name, is_public: c.isPublic, priority: c.priority, ...statsView(figures.get(c.id) ?? EMPTY),
  }));
  return { caches };
}

export async function cacheStats(g: Garret, caller: Caller, cacheName: string): Promise<CacheStatsAnswer> {
  const cache = await authorize(g, caller, cacheName, "pull");
  const now = Math.floor(Date.now() / 1000);
  const [stats, daily] = await Promise.all([
    g.meta.cacheStats(cache.id), g.meta.cacheDailyBytes(cache.id, Math.floor((now - HISTORY_SECONDS) / 86400) * 86400),
  ]);
  const config = cacheConfigView(g, cache);
  return {
    name: cache.name, substituter_endpoint: config.substituter_endpoint, public_key: config.public_key,
    is_public: cache.isPublic, priority: cache.priority, store_dir: cache.storeDir,
    retention_period: cache.retentionPeriod, quota_bytes: cache.quotaBytes,
    ...statsView(stats),
    history: daily.map((d) => ({ day: d.day, nar_bytes: d.narBytes, stored_bytes: d.storedBytes })),
  };
}

function summary(o: ObjectListing, showUploader: boolean): PathSummary {
  const s: PathSummary = {
    store_path: o.storePath, hash: o.storePathHash, nar_size: o.narSize, file_size: o.fileSize, created_at: o.createdAt,
  };
  if (showUploader) s.created_by = o.createdBy;
  return s;
}

// Opaque to clients: "<created_at>.<id>" of the last path of a page.
const encodeCursor = (o: ObjectListing): string => Buffer.from(`${o.createdAt}.${o.id}`).toString("base64url");

function decodeCursor(cursor: string): { createdAt: number; id: number } {
  const m = /^(\d{1,15})\.(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString("latin1"));
  if (!m || cursor.length > 64) throw new GarretError("RequestError", "cursor is not one this server handed out");
  return { createdAt: Number(m[1]), id: Number(m[2]) };
}

export interface PathsQuery {
  q: string | null;
  limit: string | null;
  cursor: string | null;
}

/** A page of the cache's paths, newest first, optionally only those whose name or hash starts with `q`. */
export async function listCachePaths(g: Garret, caller: Caller, cacheName: string, query: PathsQuery): Promise<PathsAnswer> {
  const cache = await authorize(g, caller, cacheName, "pull");
  const limit = query.limit === null || query.limit === "" ? DEFAULT_LIMIT : Number(query.limit);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new GarretError("RequestError", `limit must be an integer from 1 to ${MAX_LIMIT}`);
  }
  const q = query.q ?? "";
  if (q !== "" && !QUERY.test(q)) {
    throw new GarretError("RequestError", "q is 1-100 characters of a store path's name or hash (A-Z a-z 0-9 + - . _ ? =)");
  }
  const before = query.cursor ? decodeCursor(query.cursor) : undefined;
  // One more than asked tells whether there is a next page.
  const rows = await g.meta.listObjects(cache.id, { q: q || undefined, limit: limit + 1, before });
  const page = rows.slice(0, limit);
  const showUploader = effectivePermission(caller, cache, cache.name).configureCache;
  return {
    paths: page.map((o) => summary(o, showUploader)),
    next_cursor: rows.length > limit ? encodeCursor(page[page.length - 1]!) : null,
  };
}

async function closure(g: Garret, cache: CacheRecord, root: string): Promise<{ size: number; paths: number }> {
  const seen = new Set<string>([root]);
  const queue = [root];
  let size = 0;
  while (queue.length > 0 && seen.size <= CLOSURE_MAX) {
    const hash = queue.shift()!;
    const o = await g.meta.getObject(cache.id, hash);
    if (!o) continue;
    size += o.narSize;
    for (const ref of o.references) {
      const h = ref.slice(0, 32);
      if (!seen.has(h)) {
        seen.add(h);
        queue.push(h);
      }
    }
  }
  return { size, paths: seen.size - queue.length };
}

export async function cachePath(g: Garret, caller: Caller, cacheName: string, hash: string): Promise<PathAnswer> {
  const cache = await authorize(g, caller, cacheName, "pull");
  if (!isValidStorePathHash(hash)) throw noSuchObject();
  const o = await g.meta.getObject(cache.id, hash);
  if (!o) throw noSuchObject();
  const basename = o.storePath.split("/").pop()!;
  const [referrers, walk] = await Promise.all([
    g.meta.referrersOf(cache.id, basename, REFERRERS_MAX), closure(g, cache, hash),
  ]);
  return {
    store_path: o.storePath, hash: o.storePathHash,
    nar_hash: `sha256:${formatNixBase32(Buffer.from(o.narHash, "hex"))}`,
    nar_size: o.narSize, file_size: o.fileSize, compression: servedCompression(o.compression),
    references: o.references, referrers: referrers.map((r) => r.storePath.split("/").pop()!),
    deriver: o.deriver, system: o.system, ca: o.ca, sigs: o.sigs,
    closure_size: walk.size, closure_paths: walk.paths,
    nar_url: `nar/${narFileName(o)}`, narinfo_url: `${o.storePathHash}.narinfo`,
  };
}

const startedAt = Date.now();

/** Whole-server figures, for tokens holding every permission on `*` only. */
export async function serverStats(g: Garret, caller: Caller): Promise<ServerStatsAnswer> {
  const claims = claimsOf(caller);
  const perm = permissionFor(claims?.caches ?? null, "*");
  if (!Object.values(perm).every(Boolean)) {
    throw claims
      ? new GarretError("Forbidden", "The server's figures need a token with every permission on *.")
      : new GarretError("Unauthorized", "This needs a token; send one with Authorization: Bearer.");
  }
  const s = await g.meta.serverStats();
  return {
    version: pkg.version, uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
    storage: g.storage.kind, database: g.meta.engine,
    caches: s.caches, paths: s.paths, nar_bytes: s.narBytes, unique_nar_bytes: s.uniqueNarBytes, nars: s.nars,
    chunks: s.chunks, chunk_bytes: s.chunkBytes, stored_bytes: s.storedBytes, packs: s.packs, pack_bytes: s.packBytes,
    dedup_ratio: s.storedBytes > 0 ? s.narBytes / s.storedBytes : 1,
    gc_runs: [...(g.gcRuns ?? [])].reverse().map((r) => ({
      at: r.at, result: r.result, freed_bytes: r.freedBytes, objects: r.objects, chunks: r.chunks, packs: r.packs,
    })),
  };
}
