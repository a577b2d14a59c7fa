/**
 * The dashboard's queries (issue 14), written once in SQL that SQLite and PostgreSQL both run.
 * Placeholders are `?`; the PostgreSQL driver numbers them (pgPlaceholders). Only objects whose NAR
 * is valid are counted, as only those are served.
 */

import type { CacheStats, DailyBytes, ListObjectsQuery, ObjectListing, ServerStats } from "./types.ts";

export const CACHE_STATS = `
  SELECT count(*) AS paths, coalesce(sum(n.nar_size), 0) AS nar_bytes, max(o.created_at) AS last_push_at
  FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'
  WHERE o.cache_id = ?`;

export const CACHE_STORED = `
  SELECT coalesce(sum(n.file_size), 0) AS stored_bytes FROM nars n
  WHERE n.state = 'valid' AND n.id IN (SELECT o.nar_id FROM objects o WHERE o.cache_id = ?)`;

// Integer division of seconds by a day: the UTC day on both engines.
export const CACHE_DAILY = `
  SELECT (o.created_at / 86400) * 86400 AS day, sum(n.nar_size) AS nar_bytes, sum(n.file_size) AS stored_bytes
  FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'
  WHERE o.cache_id = ? AND o.created_at >= ?
  GROUP BY (o.created_at / 86400) ORDER BY day`;

const LISTING_COLUMNS = `o.id, o.store_path_hash, o.store_path, n.nar_size, n.file_size, o.created_by, o.created_at
  FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'`;

// Newest first along objects_by_created (cache_id, created_at, id); a search walks the same index
// and stops once it has `limit` matches.
export function listObjectsSql(query: ListObjectsQuery, cacheId: number): { sql: string; params: unknown[] } {
  const where = ["o.cache_id = ?"];
  const params: unknown[] = [cacheId];
  if (query.before) {
    where.push("(o.created_at < ? OR (o.created_at = ? AND o.id < ?))");
    params.push(query.before.createdAt, query.before.createdAt, query.before.id);
  }
  if (query.q) {
    where.push("lower(o.store_path) LIKE ? ESCAPE '\\'");
    params.push(`%${query.q.toLowerCase().replace(/[\\%_]/g, "\\$&")}%`);
  }
  params.push(query.limit);
  return {
    sql: `SELECT ${LISTING_COLUMNS} WHERE ${where.join(" AND ")} ORDER BY o.created_at DESC, o.id DESC LIMIT ?`,
    params,
  };
}

// refs is a JSON array of basenames: a quoted basename is one element of it.
export const REFERRERS = `SELECT ${LISTING_COLUMNS}
  WHERE o.cache_id = ? AND o.refs LIKE ? ESCAPE '\\' AND o.store_path_hash <> ?
  ORDER BY o.store_path LIMIT ?`;

export function referrersParams(cacheId: number, basename: string, limit: number): unknown[] {
  return [cacheId, `%${JSON.stringify(basename).replace(/[\\%_]/g, "\\$&")}%`, basename.slice(0, 32), limit];
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

export function toCacheStats(a: { paths: Num; nar_bytes: Num; last_push_at: Num }, b: { stored_bytes: Num } | null): CacheStats {
  return {
    paths: n(a.paths), narBytes: n(a.nar_bytes), storedBytes: n(b?.stored_bytes ?? 0),
    lastPushAt: a.last_push_at === null ? null : n(a.last_push_at),
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
