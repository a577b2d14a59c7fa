/**
 * Whether chunk `c` is used by a path of the caches `inCaches` tests `o.cache_id` against (each
 * engine's spelling of a list parameter): what an uploader may be told is stored already (see
 * src/cache/dedup-view.ts). It must go chunk → its NARs (nar_chunks_by_chunk) → their paths
 * (objects_by_nar): PostgreSQL, left to itself on a small cache, walked every path of the cache
 * by cache_id for each chunk (15 ms for 20 chunks over 341 paths), which a large cache would make
 * far worse. `cache_id + 0` takes the cache indexes out of the choice.
 */
export function chunkShownIn(inCaches: string): string {
  return `EXISTS (SELECT 1 FROM nar_chunks nc JOIN objects o ON o.nar_id = nc.nar_id
    WHERE nc.chunk_id = c.id AND o.cache_id + 0 ${inCaches})`;
}
