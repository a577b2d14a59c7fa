import { OBJECT_REFS_BACKFILL } from "./object-refs.ts";

/**
 * Versioned schema migrations. Each entry runs once, in order, inside a transaction; the applied
 * version is kept in `schema_version`. Never edit a released migration: append a new one.
 *
 * The model is built for global deduplication from the start: caches are views (objects) over a
 * content-addressed set of NARs, each NAR is an ordered list of chunks, and chunks live at an
 * offset inside pack files in storage. A NAR stored whole is simply a NAR with one chunk.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE caches (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    is_public INTEGER NOT NULL DEFAULT 0,
    store_dir TEXT NOT NULL DEFAULT '/nix/store',
    priority INTEGER NOT NULL DEFAULT 41,
    upstream_cache_key_names TEXT NOT NULL DEFAULT '["cache.nixos.org-1"]',
    signing_key TEXT NOT NULL,
    retention_period INTEGER,
    created_at INTEGER NOT NULL
  );

  -- A pack is one storage object holding many compressed chunks back to back. 'pending' while an
  -- upload writes it (so a crash leaves a record for the collector), 'valid' once durable.
  CREATE TABLE packs (
    id INTEGER PRIMARY KEY,
    storage_key TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('pending', 'valid', 'deleting')),
    created_at INTEGER NOT NULL
  );

  CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    chunk_hash TEXT NOT NULL UNIQUE,          -- sha256 hex of the uncompressed bytes
    chunk_size INTEGER NOT NULL,              -- uncompressed length
    compression TEXT NOT NULL,                -- none | zstd | xz | br
    pack_id INTEGER NOT NULL REFERENCES packs(id),
    pack_offset INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,             -- compressed length inside the pack
    state TEXT NOT NULL DEFAULT 'valid' CHECK (state IN ('valid', 'damaged', 'deleting')),
    created_at INTEGER NOT NULL
  );
  CREATE INDEX chunks_by_pack ON chunks(pack_id, pack_offset);

  CREATE TABLE nars (
    id INTEGER PRIMARY KEY,
    nar_hash TEXT NOT NULL UNIQUE,            -- sha256 hex of the uncompressed NAR
    nar_size INTEGER NOT NULL,
    num_chunks INTEGER NOT NULL,
    file_size INTEGER NOT NULL,               -- sum of the stored (compressed) chunk sizes
    compression TEXT NOT NULL,                -- common compression of its chunks, or 'mixed'
    state TEXT NOT NULL DEFAULT 'valid' CHECK (state IN ('valid', 'damaged', 'deleting')),
    created_at INTEGER NOT NULL
  );

  CREATE TABLE nar_chunks (
    nar_id INTEGER NOT NULL REFERENCES nars(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    chunk_id INTEGER NOT NULL REFERENCES chunks(id),
    PRIMARY KEY (nar_id, seq)
  ) WITHOUT ROWID;
  CREATE INDEX nar_chunks_by_chunk ON nar_chunks(chunk_id);

  -- A store path as one cache sees it.
  CREATE TABLE objects (
    id INTEGER PRIMARY KEY,
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    store_path_hash TEXT NOT NULL,
    store_path TEXT NOT NULL,
    nar_id INTEGER NOT NULL REFERENCES nars(id),
    refs TEXT NOT NULL,                       -- JSON array of reference basenames
    system TEXT,
    deriver TEXT,
    ca TEXT,
    sigs TEXT NOT NULL DEFAULT '[]',          -- JSON array of signatures the uploader sent
    server_sig TEXT,                          -- signature by the cache key, made at creation
    server_sig_key TEXT,                      -- public key that made server_sig
    created_by TEXT,
    created_at INTEGER NOT NULL,
    last_accessed_at INTEGER NOT NULL,
    UNIQUE (cache_id, store_path_hash)
  );
  CREATE INDEX objects_by_nar ON objects(nar_id);
  `,
  // 2: garbage collection (issue 5). See src/gc/collect.ts for why these make collection safe.
  `
  -- One row per upload in flight. AUTOINCREMENT ids never repeat, so "leases issued before a chunk
  -- was marked" is an id comparison, immune to clock skew. A crashed server's leases expire.
  CREATE TABLE upload_leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  -- Highest lease id issued when the collector marked the chunk 'deleting'.
  ALTER TABLE chunks ADD COLUMN mark_seq INTEGER;
  CREATE INDEX chunks_by_state ON chunks(state) WHERE state != 'valid';
  -- When a pack lost its last chunk (or was found to be a crash leftover); its bytes go after the
  -- grace period so readers that looked up its chunks before can finish.
  ALTER TABLE packs ADD COLUMN deleting_at INTEGER;
  CREATE INDEX packs_by_state ON packs(state);
  CREATE INDEX objects_by_access ON objects(cache_id, last_accessed_at);

  -- Optional per-cache size quota in bytes (stored, compressed); NULL = none.
  ALTER TABLE caches ADD COLUMN quota_bytes INTEGER;

  -- A pin keeps a path and its closure in one cache regardless of retention and quota.
  CREATE TABLE pins (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    store_path_hash TEXT NOT NULL,
    store_path TEXT NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (cache_id, name)
  );

  -- At most one collection at a time, across processes (garret serve and garret gc).
  CREATE TABLE gc_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  );
  `,
  // 3: no query reads objects in last-access order (retention loads a cache's objects through
  // the (cache_id, store_path_hash) key and orders them itself), yet every upload and every
  // recorded fetch had to keep this index up to date: one B-tree page more per commit.
  `
  DROP INDEX IF EXISTS objects_by_access;
  `,
  // 4: cache ids are never reused (issue 12). Without AUTOINCREMENT SQLite hands a destroyed cache's
  // id to the next cache created, and anything that read the old id before an await (an upload in
  // flight) would write into the new cache. The table is rebuilt with AUTOINCREMENT (SQLite cannot
  // add it in place); foreign keys are off while migrations run, so nothing cascades.
  `
  CREATE TABLE caches_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    is_public INTEGER NOT NULL DEFAULT 0,
    store_dir TEXT NOT NULL DEFAULT '/nix/store',
    priority INTEGER NOT NULL DEFAULT 41,
    upstream_cache_key_names TEXT NOT NULL DEFAULT '["cache.nixos.org-1"]',
    signing_key TEXT NOT NULL,
    retention_period INTEGER,
    created_at INTEGER NOT NULL,
    quota_bytes INTEGER
  );
  INSERT INTO caches_new (id, name, is_public, store_dir, priority, upstream_cache_key_names, signing_key,
    retention_period, created_at, quota_bytes)
  SELECT id, name, is_public, store_dir, priority, upstream_cache_key_names, signing_key,
    retention_period, created_at, quota_bytes FROM caches;
  DROP TABLE caches;
  ALTER TABLE caches_new RENAME TO caches;
  `,
  // 5: the dashboard lists a cache's paths newest first, paged by (created_at, id) (issue 14).
  `
  CREATE INDEX objects_by_created ON objects(cache_id, created_at, id);
  `,
  // 6: provenance of every push (issue 16: the token id and client address beside created_by,
  // the sub) and the audit log of admin actions.
  `
  ALTER TABLE objects ADD COLUMN pushed_by_token TEXT;
  ALTER TABLE objects ADD COLUMN pushed_from TEXT;
  CREATE INDEX objects_by_uploader ON objects(created_by);
  CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
  );
  `,
  // 7: the token registry (issue 16): minted tokens by id (never the token itself) and revocations
  // by id or by sub, read by every replica through this database.
  `
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    sub TEXT NOT NULL,
    permissions TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  );
  CREATE INDEX tokens_by_sub ON tokens(sub);
  CREATE TABLE revoked_subs (
    sub TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL
  );
  `,
  // 8: the dashboard's figures as counters (issue 14, acceptance 4): every write of objects (upload
  // commit, expiry and purge, fsck hiding a NAR, a commit healing one) moves them in its own
  // transaction, so a cache's figures cost one row, not a walk over its paths. Only paths whose NAR
  // is valid count (only those are served). stored_bytes is the stored size of each path's NAR, a
  // NAR counted once per path using it; last_push_at is the latest push ever (expiry leaves it).
  // Search by name prefix walks objects_by_name; by hash prefix, the (cache_id, store_path_hash) key.
  `
  CREATE TABLE cache_counters (
    cache_id INTEGER PRIMARY KEY REFERENCES caches(id) ON DELETE CASCADE,
    paths INTEGER NOT NULL DEFAULT 0,
    nar_bytes INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    last_push_at INTEGER
  );
  CREATE TABLE cache_daily (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    day INTEGER NOT NULL,
    paths INTEGER NOT NULL DEFAULT 0,
    nar_bytes INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (cache_id, day)
  ) WITHOUT ROWID;
  INSERT INTO cache_counters (cache_id, paths, nar_bytes, stored_bytes, last_push_at)
    SELECT o.cache_id, count(*), sum(n.nar_size), sum(n.file_size), max(o.created_at)
    FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid' GROUP BY o.cache_id;
  INSERT INTO cache_daily (cache_id, day, paths, nar_bytes, stored_bytes)
    SELECT o.cache_id, (o.created_at / 86400) * 86400, count(*), sum(n.nar_size), sum(n.file_size)
    FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid' GROUP BY o.cache_id, o.created_at / 86400;
  CREATE INDEX objects_by_name ON objects(cache_id, lower(substr(store_path, instr(store_path, store_path_hash) + 33)));
  `,
  // 9: the counters are split in shards (issue 14): on PostgreSQL every commit into a cache added to
  // its one row, so commits into one cache queued on that row's lock until each had committed (its
  // WAL flush included). Each connection now adds to the shard of its backend (one of 64); readers
  // sum a cache's shards. SQLite has one writer and keeps shard 0.
  `
  CREATE TABLE cache_counters_new (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    shard INTEGER NOT NULL DEFAULT 0,
    paths INTEGER NOT NULL DEFAULT 0,
    nar_bytes INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    last_push_at INTEGER,
    PRIMARY KEY (cache_id, shard)
  ) WITHOUT ROWID;
  INSERT INTO cache_counters_new (cache_id, paths, nar_bytes, stored_bytes, last_push_at)
    SELECT cache_id, paths, nar_bytes, stored_bytes, last_push_at FROM cache_counters;
  DROP TABLE cache_counters;
  ALTER TABLE cache_counters_new RENAME TO cache_counters;
  CREATE TABLE cache_daily_new (
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    day INTEGER NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    paths INTEGER NOT NULL DEFAULT 0,
    nar_bytes INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (cache_id, day, shard)
  ) WITHOUT ROWID;
  INSERT INTO cache_daily_new (cache_id, day, paths, nar_bytes, stored_bytes)
    SELECT cache_id, day, paths, nar_bytes, stored_bytes FROM cache_daily;
  DROP TABLE cache_daily;
  ALTER TABLE cache_daily_new RENAME TO cache_daily;
  `,
  // 10: nothing on SQLite (PostgreSQL leaves room in objects' pages: see PG_MIGRATIONS[9]).
  `SELECT 1;`,
  // 11: NARs staged by native `nix copy` PUTs (issue 15), in the database rather than one process's
  // memory: the narinfo PUT may reach another replica, or the same server after a restart. Each
  // holds an upload lease (the collector keeps the chunks it reuses and its packs) until it is
  // published, replaced or expires; `parts` is the JSON of what the commit needs (its chunks in
  // order, the new ones and their packs), final once `durable` (its packs are written and synced
  // just after the PUT answers); the collector deletes expired rows and their packs.
  `
  CREATE TABLE staged_nars (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cache_id INTEGER NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_id INTEGER NOT NULL,
    nar_hash TEXT NOT NULL,
    nar_size INTEGER NOT NULL,
    parts TEXT NOT NULL,
    durable INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (cache_id, file)
  );
  CREATE INDEX staged_nars_by_owner ON staged_nars(owner, expires_at);
  CREATE INDEX staged_nars_by_expiry ON staged_nars(expires_at);
  `,
  // 12: each path's references within its cache, one row each, so the dashboard's referrers of a
  // path are one index range: matching the refs JSON with LIKE read every path of the cache (a
  // cold single-path page took 20 ms at 100 000 paths on an idle machine, 155 ms on a busy one).
  // Written with the object (commitUpload), gone with it (the cascade, through
  // object_refs_by_object). Self-references are left out.
  `
  CREATE TABLE object_refs (
    cache_id INTEGER NOT NULL,
    ref_hash TEXT NOT NULL,
    object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    PRIMARY KEY (cache_id, ref_hash, object_id)
  ) WITHOUT ROWID;
  CREATE INDEX object_refs_by_object ON object_refs(object_id);
  ${OBJECT_REFS_BACKFILL.sqlite}
  `,
];

/**
 * The same schema for PostgreSQL, entry for entry: PG_MIGRATIONS[i] brings a PostgreSQL database
 * to the state MIGRATIONS[i] brings a SQLite one, so both report the same schema version and a
 * migration added to one list must be added to the other (test/db/migrations.test.ts checks).
 * Ids are identity columns from the start (never reused, like SQLite's AUTOINCREMENT); integers
 * that can pass 2^31 (sizes, offsets, timestamps, ids) are BIGINT. Booleans and JSON stay INTEGER
 * and TEXT so both engines hold the same values.
 */
export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE caches (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    is_public INTEGER NOT NULL DEFAULT 0,
    store_dir TEXT NOT NULL DEFAULT '/nix/store',
    priority INTEGER NOT NULL DEFAULT 41,
    upstream_cache_key_names TEXT NOT NULL DEFAULT '["cache.nixos.org-1"]',
    signing_key TEXT NOT NULL,
    retention_period BIGINT,
    created_at BIGINT NOT NULL
  );
  CREATE TABLE packs (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    storage_key TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('pending', 'valid', 'deleting')),
    created_at BIGINT NOT NULL
  );
  CREATE TABLE chunks (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    chunk_hash TEXT NOT NULL UNIQUE,
    chunk_size BIGINT NOT NULL,
    compression TEXT NOT NULL,
    pack_id BIGINT NOT NULL REFERENCES packs(id),
    pack_offset BIGINT NOT NULL,
    stored_size BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'valid' CHECK (state IN ('valid', 'damaged', 'deleting')),
    created_at BIGINT NOT NULL
  );
  CREATE INDEX chunks_by_pack ON chunks(pack_id, pack_offset);
  CREATE TABLE nars (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    nar_hash TEXT NOT NULL UNIQUE,
    nar_size BIGINT NOT NULL,
    num_chunks INTEGER NOT NULL,
    file_size BIGINT NOT NULL,
    compression TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'valid' CHECK (state IN ('valid', 'damaged', 'deleting')),
    created_at BIGINT NOT NULL
  );
  CREATE TABLE nar_chunks (
    nar_id BIGINT NOT NULL REFERENCES nars(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    chunk_id BIGINT NOT NULL REFERENCES chunks(id),
    PRIMARY KEY (nar_id, seq)
  );
  CREATE INDEX nar_chunks_by_chunk ON nar_chunks(chunk_id);
  CREATE TABLE objects (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    cache_id BIGINT NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    store_path_hash TEXT NOT NULL,
    store_path TEXT NOT NULL,
    nar_id BIGINT NOT NULL REFERENCES nars(id),
    refs TEXT NOT NULL,
    system TEXT,
    deriver TEXT,
    ca TEXT,
    sigs TEXT NOT NULL DEFAULT '[]',
    server_sig TEXT,
    server_sig_key TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    last_accessed_at BIGINT NOT NULL,
    UNIQUE (cache_id, store_path_hash)
  );
  CREATE INDEX objects_by_nar ON objects(nar_id);
  `,
  `
  CREATE TABLE upload_leases (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  ALTER TABLE chunks ADD COLUMN mark_seq BIGINT;
  CREATE INDEX chunks_by_state ON chunks(state) WHERE state != 'valid';
  ALTER TABLE packs ADD COLUMN deleting_at BIGINT;
  CREATE INDEX packs_by_state ON packs(state);
  CREATE INDEX objects_by_access ON objects(cache_id, last_accessed_at);
  ALTER TABLE caches ADD COLUMN quota_bytes BIGINT;
  CREATE TABLE pins (
    cache_id BIGINT NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    store_path_hash TEXT NOT NULL,
    store_path TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (cache_id, name)
  );
  -- Kept for the same schema on both engines; PostgreSQL's collector lock is an advisory lock.
  CREATE TABLE gc_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  `,
  `
  DROP INDEX IF EXISTS objects_by_access;
  `,
  // 4: identity ids are never reused already; nothing to rebuild.
  `
  SELECT 1;
  `,
  `
  CREATE INDEX objects_by_created ON objects(cache_id, created_at, id);
  `,
  `
  ALTER TABLE objects ADD COLUMN pushed_by_token TEXT;
  ALTER TABLE objects ADD COLUMN pushed_from TEXT;
  CREATE INDEX objects_by_uploader ON objects(created_by);
  CREATE TABLE audit_log (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
  );
  `,
  // 7: the token registry (issue 16): minted tokens by id (never the token itself) and revocations
  // by id or by sub, read by every replica through this database.
  `
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    sub TEXT NOT NULL,
    permissions TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
  );
  CREATE INDEX tokens_by_sub ON tokens(sub);
  CREATE TABLE revoked_subs (
    sub TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL
  );
  `,
  // 8: see MIGRATIONS[7]. The name index compares bytes (COLLATE "C"), as SQLite's does, so a
  // prefix is one range of it whatever the database's collation.
  `
  CREATE TABLE cache_counters (
    cache_id BIGINT PRIMARY KEY REFERENCES caches(id) ON DELETE CASCADE,
    paths BIGINT NOT NULL DEFAULT 0,
    nar_bytes BIGINT NOT NULL DEFAULT 0,
    stored_bytes BIGINT NOT NULL DEFAULT 0,
    last_push_at BIGINT
  );
  CREATE TABLE cache_daily (
    cache_id BIGINT NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    day BIGINT NOT NULL,
    paths BIGINT NOT NULL DEFAULT 0,
    nar_bytes BIGINT NOT NULL DEFAULT 0,
    stored_bytes BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (cache_id, day)
  );
  INSERT INTO cache_counters (cache_id, paths, nar_bytes, stored_bytes, last_push_at)
    SELECT o.cache_id, count(*), sum(n.nar_size), sum(n.file_size), max(o.created_at)
    FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid' GROUP BY o.cache_id;
  INSERT INTO cache_daily (cache_id, day, paths, nar_bytes, stored_bytes)
    SELECT o.cache_id, (o.created_at / 86400) * 86400, count(*), sum(n.nar_size), sum(n.file_size)
    FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid' GROUP BY o.cache_id, o.created_at / 86400;
  CREATE INDEX objects_by_name ON objects(cache_id, (lower(substr(store_path, strpos(store_path, store_path_hash) + 33)) COLLATE "C"));
  `,
  // 9: see MIGRATIONS[8].
  `
  ALTER TABLE cache_counters ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE cache_counters DROP CONSTRAINT cache_counters_pkey;
  ALTER TABLE cache_counters ADD PRIMARY KEY (cache_id, shard);
  ALTER TABLE cache_daily ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE cache_daily DROP CONSTRAINT cache_daily_pkey;
  ALTER TABLE cache_daily ADD PRIMARY KEY (cache_id, day, shard);
  `,
  // 10: objects' pages keep 10% free, so rewriting last_accessed_at (not indexed) is a HOT update
  // that touches no index: get-missing-paths and access flushes rewrite thousands of rows at once.
  // Pages written before keep their fill until rewritten.
  `ALTER TABLE objects SET (fillfactor = 90);`,
  // 11: see MIGRATIONS[10].
  `
  CREATE TABLE staged_nars (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    cache_id BIGINT NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_id BIGINT NOT NULL,
    nar_hash TEXT NOT NULL,
    nar_size BIGINT NOT NULL,
    parts TEXT NOT NULL,
    durable INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (cache_id, file)
  );
  CREATE INDEX staged_nars_by_owner ON staged_nars(owner, expires_at);
  CREATE INDEX staged_nars_by_expiry ON staged_nars(expires_at);
  `,
  // 12: see MIGRATIONS[11].
  `
  CREATE TABLE object_refs (
    cache_id BIGINT NOT NULL,
    ref_hash TEXT NOT NULL,
    object_id BIGINT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    PRIMARY KEY (cache_id, ref_hash, object_id)
  );
  CREATE INDEX object_refs_by_object ON object_refs(object_id);
  ${OBJECT_REFS_BACKFILL.postgresql}
  `,
];
