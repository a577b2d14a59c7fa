/**
 * The dashboard's queries (issue 14), written once in SQL that SQLite and PostgreSQL both run.
 * Placeholders are `?`; the PostgreSQL driver numbers them (pgPlaceholders). Only objects whose NAR
 * is valid are counted, as only those are served.
 */

import type { CacheStats, DailyBytes, ListObjectsQuery, ObjectListing, ServerStats } from "./types.ts";

/*
 * A cache's figures are counters (cache_counters, and cache_daily per UTC day of push) that every
 * write of objects moves in its own transaction by the contribution of each path it adds, removes
 * or hides (see Deltas). A path counts while its NAR is valid: 1 path, its NAR's size, and its NAR's
 * stored (compressed) size; a NAR two paths use counts for each, so a cache's stored bytes are its
 * paths' stored sizes and what sharing saves across paths and caches shows on the server page.
 */

// A cache's counters are split in shards (one per writing connection on PostgreSQL, see migration 9): summed here.
export const CACHE_STATS = `SELECT sum(paths) AS paths, sum(nar_bytes) AS nar_bytes, sum(stored_bytes) AS stored_bytes,
  max(last_push_at) AS last_push_at FROM cache_counters WHERE cache_id = ?`;

export const ALL_CACHE_STATS = `SELECT cache_id, sum(paths) AS paths, sum(nar_bytes) AS nar_bytes, sum(stored_bytes) AS stored_bytes,
  max(last_push_at) AS last_push_at FROM cache_counters GROUP BY cache_id`;

export const CACHE_DAILY = `SELECT day, sum(nar_bytes) AS nar_bytes, sum(stored_bytes) AS stored_bytes FROM cache_daily
  WHERE cache_id = ? AND day >= ? GROUP BY day HAVING sum(paths) > 0 ORDER BY day`;

/** The figures counted from the paths themselves: what the counters must equal (tests, benches). */
export const RECOUNT_STATS = `
  SELECT o.cache_id, count(*) AS paths, coalesce(sum(n.nar_size), 0) AS nar_bytes, coalesce(sum(n.file_size), 0) AS stored_bytes,
    max(o.created_at) AS last_push_at
  FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid' GROUP BY o.cache_id ORDER BY o.cache_id`;

export const RECOUNT_DAILY = `
  SELECT o.cache_id, (o.created_at / 86400) * 86400 AS day, count(*) AS paths, sum(n.nar_size) AS nar_bytes, sum(n.file_size) AS stored_bytes
  FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'
  GROUP BY o.cache_id, o.created_at / 86400 ORDER BY o.cache_id, day`;

/** Rebuilds the counters from the paths (for tools that write objects directly, like the benches). */
export const REBUILD_COUNTERS = [
  "DELETE FROM cache_counters", "DELETE FROM cache_daily",
  `INSERT INTO cache_counters (cache_id, paths, nar_bytes, stored_bytes, last_push_at) ${RECOUNT_STATS}`,
  `INSERT INTO cache_daily (cache_id, day, paths, nar_bytes, stored_bytes) ${RECOUNT_DAILY}`,
];

/** What one path adds to its cache's figures while its NAR is valid (negated when it goes). */
export interface PathContribution {
  cacheId: number;
  createdAt: number;
  narSize: number;
  fileSize: number;
}

export interface CounterDelta { cacheId: number; paths: number; narBytes: number; storedBytes: number; lastPushAt: number | null }
export interface DailyDelta { cacheId: number; day: number; paths: number; narBytes: number; storedBytes: number }

/** The sum of a transaction's changes, one row per cache and per (cache, day), in key order (row locks in one order). */
export class Deltas {
  private readonly caches = new Map<number, CounterDelta>();
  private readonly days = new Map<string, DailyDelta>();

  add(p: PathContribution, sign: 1 | -1): void {
    const c = this.caches.get(p.cacheId) ?? { cacheId: p.cacheId, paths: 0, narBytes: 0, storedBytes: 0, lastPushAt: null };
    c.paths += sign;
    c.narBytes += sign * p.narSize;
    c.storedBytes += sign * p.fileSize;
    this.caches.set(p.cacheId, c);
    const day = Math.floor(p.createdAt / 86400) * 86400;
    const key = `${p.cacheId}:${day}`;
    const d = this.days.get(key) ?? { cacheId: p.cacheId, day, paths: 0, narBytes: 0, storedBytes: 0 };
    d.paths += sign;
    d.narBytes += sign * p.narSize;
    d.storedBytes += sign * p.fileSize;
    this.days.set(key, d);
  }

  pushed(cacheId: number, at: number): void {
    const c = this.caches.get(cacheId) ?? { cacheId, paths: 0, narBytes: 0, storedBytes: 0, lastPushAt: null };
    c.lastPushAt = Math.max(c.lastPushAt ?? 0, at);
    this.caches.set(cacheId, c);
  }

  counters(): CounterDelta[] {
    return [...this.caches.values()].sort((a, b) => a.cacheId - b.cacheId);
  }

  daily(): DailyDelta[] {
    return [...this.days.values()].filter((d) => d.paths !== 0 || d.narBytes !== 0 || d.storedBytes !== 0)
      .sort((a, b) => a.cacheId - b.cacheId || a.day - b.day);
  }
}

/** Adds to a shard of a cache's counters; PostgreSQL's row lock makes concurrent additions exact. */
export const BUMP_COUNTERS_SET = `ON CONFLICT (cache_id, shard) DO UPDATE SET paths = cache_counters.paths + excluded.paths,
    nar_bytes = cache_counters.nar_bytes + excluded.nar_bytes, stored_bytes = cache_counters.stored_bytes + excluded.stored_bytes,
    last_push_at = CASE WHEN excluded.last_push_at IS NULL OR cache_counters.last_push_at >= excluded.last_push_at
      THEN cache_counters.last_push_at ELSE excluded.last_push_at END`;

export const BUMP_DAILY_SET = `ON CONFLICT (cache_id, day, shard) DO UPDATE SET paths = cache_daily.paths + excluded.paths,
    nar_bytes = cache_daily.nar_bytes + excluded.nar_bytes, stored_bytes = cache_daily.stored_bytes + excluded.stored_bytes`;

const LISTING_COLUMNS = `o.id, o.store_path_hash, o.store_path, n.nar_size, n.file_size, o.created_by, o.created_at
  FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'`;

/** The lowercased name part of a store path, as objects_by_name indexes it (each engine spells it its own way). */
export const NAME_EXPR = {
  sqlite: "lower(substr(store_path, instr(store_path, store_path_hash) + 33))",
  postgresql: `(lower(substr(store_path, strpos(store_path, store_path_hash) + 33)) COLLATE "C")`,
} as const;

const NIX_BASE32 = /^[0-9a-df-np-sv-z]{1,32}$/;

/**
 * Newest first along objects_by_created (cache_id, created_at, id). A search keeps the paths whose
 * name (after the hash and its dash) starts with q, case-insensitively, or whose hash starts with
 * q: two index ranges (objects_by_name, and the (cache_id, store_path_hash) key), whose matches
 * alone are then ordered, so a search that matches nothing costs two index probes. Names and
 * queries are ASCII ([A-Za-z0-9+-._?=]), so q + '~' bounds every name starting with q.
 */
export function listObjectsSql(query: ListObjectsQuery, cacheId: number, engine: keyof typeof NAME_EXPR): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  let from = "objects o";
  if (query.q) {
    // The matches carry their own columns: joined back to objects by id, PostgreSQL would rather
    // scan the whole table than look a thousand matches up.
    const q = query.q.toLowerCase();
    const name = NAME_EXPR[engine];
    const cols = "SELECT id, store_path_hash, store_path, nar_id, created_by, created_at FROM objects";
    const branches = [`${cols} WHERE cache_id = ? AND ${name} >= ? AND ${name} < ?`];
    params.push(cacheId, q, `${q}~`);
    if (NIX_BASE32.test(q)) {
      // Hashes are 32 characters of nix-base32: every hash starting with q lies in [q, q + "zzz…"].
      branches.push(`${cols} WHERE cache_id = ? AND store_path_hash >= ? AND store_path_hash <= ?`);
      params.push(cacheId, q, q + "z".repeat(32 - q.length));
    }
    from = `(${branches.join(" UNION ")}) o`;
  } else {
    where.push("o.cache_id = ?");
    params.push(cacheId);
  }
  if (query.before) {
    where.push("(o.created_at < ? OR (o.created_at = ? AND o.id < ?))");
    params.push(query.before.createdAt, query.before.createdAt, query.before.id);
  }
  params.push(query.limit);
  return {
    sql: `SELECT o.id, o.store_path_hash, o.store_path, n.nar_size, n.file_size, o.created_by, o.created_at
      FROM ${from} JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'
      ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY o.created_at DESC, o.id DESC LIMIT ?`,
    params,
  };
}

// One range of object_refs (see object-refs.ts), which holds no self-references; the objects'
// own cache is checked too, so a row could never show a path of another cache.
export const REFERRERS = `SELECT ${LISTING_COLUMNS} JOIN object_refs r ON r.object_id = o.id
  WHERE r.cache_id = ? AND r.ref_hash = ? AND o.cache_id = ?
  ORDER BY o.store_path LIMIT ?`;

export function referrersParams(cacheId: number, basename: string, limit: number): unknown[] {
  return [cacheId, basename.slice(0, 32), cacheId, limit];
}

export const SERVER_STATS = `
  SELECT
    (SELECT count(*) FROM caches) AS caches,
    (SELECT count(*) FROM objects) AS paths,
    (SELECT coalesce(sum(n.nar_size), 0) FROM objects o JOIN nars n ON n.id = o.nar_id) AS nar_bytes,
    (SELECT count(*) FROM nars WHERE state = 'valid') AS nars,
    (SELECT coalesce(sum(nar_size), 0) FROM nars WHERE state = 'valid') AS unique_nar_bytes,
    (SELECT count(*) FROM chunks) AS chunks,
    (SELECT coalesce(sum(chunk_size), 0) FROM chunks) AS chunk_bytes,
    (SELECT coalesce(sum(stored_size), 0) FROM chunks) AS stored_bytes,
    (SELECT count(*) FROM packs WHERE state = 'valid') AS packs,
    (SELECT coalesce(sum(size), 0) FROM packs WHERE state = 'valid') AS pack_bytes`;

type Num = number | bigint | string | null;
const n = (v: Num): number => (v === null ? 0 : Number(v));

export type CountersRow = { paths: Num; nar_bytes: Num; stored_bytes: Num; last_push_at: Num };

/** A cache's summed counters (nulls, or no row, for a cache never pushed to: zeros). */
export function toCacheStats(r: CountersRow | null): CacheStats {
  if (!r) return { paths: 0, narBytes: 0, storedBytes: 0, lastPushAt: null };
  return {
    paths: n(r.paths), narBytes: n(r.nar_bytes), storedBytes: n(r.stored_bytes),
    lastPushAt: r.last_push_at === null ? null : n(r.last_push_at),
  };
}

export function toDaily(r: { day: Num; nar_bytes: Num; stored_bytes: Num }): DailyBytes {
  return { day: n(r.day), narBytes: n(r.nar_bytes), storedBytes: n(r.stored_bytes) };
}

export function toListing(r: {
  id: Num; store_path_hash: string; store_path: string; nar_size: Num; file_size: Num; created_by: string | null; created_at: Num;
}): ObjectListing {
  return {
    id: n(r.id), storePathHash: r.store_path_hash, storePath: r.store_path, narSize: n(r.nar_size),
    fileSize: n(r.file_size), createdBy: r.created_by, createdAt: n(r.created_at),
  };
}

export function toServerStats(r: Record<string, Num>): ServerStats {
  return {
    caches: n(r.caches!), paths: n(r.paths!), narBytes: n(r.nar_bytes!), nars: n(r.nars!),
    uniqueNarBytes: n(r.unique_nar_bytes!), chunks: n(r.chunks!), chunkBytes: n(r.chunk_bytes!),
    storedBytes: n(r.stored_bytes!), packs: n(r.packs!), packBytes: n(r.pack_bytes!),
  };
}

/** `?` placeholders as PostgreSQL's $1, $2, ... (none of these queries has a `?` in a literal). */
export function pgPlaceholders(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}
