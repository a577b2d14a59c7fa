/**
 * `object_refs`: each path's references within its cache (migration 12), the index behind the
 * dashboard's referrers of a path. A row is (cache, the referenced path's hash part, the referrer);
 * the referenced path need not be in the cache (the row then names nothing anyone asks about).
 */

/** The hash parts a path refers to, itself left out, each once: the rows its object has. */
export function refHashes(storePathHash: string, references: readonly string[]): string[] {
  const hashes = new Set(references.map((r) => r.slice(0, 32)));
  hashes.delete(storePathHash);
  return [...hashes];
}

/** Fills the table from every object's refs JSON (the migration; the dashboard bench after its bulk insert). */
export const OBJECT_REFS_BACKFILL = {
  sqlite: `INSERT OR IGNORE INTO object_refs (cache_id, ref_hash, object_id)
    SELECT o.cache_id, substr(j.value, 1, 32), o.id FROM objects o, json_each(o.refs) j
    WHERE substr(j.value, 1, 32) <> o.store_path_hash;`,
  postgresql: `INSERT INTO object_refs (cache_id, ref_hash, object_id)
    SELECT o.cache_id, substr(j.value, 1, 32), o.id FROM objects o, json_array_elements_text(o.refs::json) AS j(value)
    WHERE substr(j.value, 1, 32) <> o.store_path_hash ON CONFLICT DO NOTHING;`,
};
