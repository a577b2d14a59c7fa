/**
 * Whether chunk `c` is used by a path of the caches `$CACHES` (a subquery listing their ids, in
 * each engine's spelling): what an uploader may be told is stored already (see
 * src/cache/dedup-view.ts). One index range per chunk: its NARs (nar_chunks_by_chunk), their paths
 * (objects_by_nar).
 */
export const CHUNK_SHOWN_IN = `EXISTS (SELECT 1 FROM nar_chunks nc JOIN objects o ON o.nar_id = nc.nar_id
  WHERE nc.chunk_id = c.id AND o.cache_id IN ($CACHES))`;
