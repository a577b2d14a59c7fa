import { Database, type Statement } from "bun:sqlite";
import { chmodSync, closeSync, openSync, statSync } from "node:fs";
import { MIGRATIONS } from "./migrations.ts";
import { refHashes } from "./object-refs.ts";
import { chunkShownIn } from "./chunk-shown.ts";
import { SAFETY_NET_PAGES, startCheckpointer, type Checkpointer } from "./checkpointer.ts";
import { CacheChanged, pushRecord, StagingGone, type AuditEntry, type NewStagedNar, type PushRecord, type PushRow, type StagedNarRecord, type StagedParts } from "./types.ts";
import { OverQuota, ownPackIds, STAGING_SQL, toStaged, type StagedRow } from "./staging-rows.ts";
import * as dash from "./dashboard-sql.ts";
import type {
  CacheIdentity, CachePatch, CacheStats, DailyBytes, ListObjectsQuery, ObjectListing, ServerStats, CacheRecord, ChunkLocation, ChunkMove, CompactionCandidate, Compression, GcObject, IndexedChunk,
  MetaStore, NarRecord, NewCache, ObjectView, PackChunk, PackRecord, PinRecord, RevocationList, ServedNar, TokenRecord, UploadCommit, VisibleObject,
} from "./types.ts";

const now = (): number => Math.floor(Date.now() / 1000);

/** How long a cache record found by getCache is reused, and how many are kept. */
const CACHE_RECORD_MS = 1000;
const CACHE_RECORDS_MAX = 1024;
/** See MetaStore.narSharing: the NAR's distinct chunks found in no other NAR a path of the caches uses (through the NAR's paths, never a cache's: see chunk-shown.ts). */
const NAR_SHARING = `SELECT (SELECT file_size FROM nars WHERE id = $nar) AS file_size, coalesce(sum(c.chunk_size), 0) AS unshared
  FROM chunks c WHERE c.id IN (SELECT chunk_id FROM nar_chunks WHERE nar_id = $nar)
    AND NOT EXISTS (SELECT 1 FROM nar_chunks nc JOIN objects o ON o.nar_id = nc.nar_id
      WHERE nc.chunk_id = c.id AND nc.nar_id <> $nar AND o.cache_id + 0 IN (SELECT value FROM json_each($caches)))`;
/** The valid chunks among the hashes in ?1 (a JSON array), with `extra` columns. */
const findChunksSql = (extra: string): string => `SELECT c.chunk_hash AS hash, c.id, c.chunk_size AS size, p.storage_key AS packKey,
    c.pack_offset AS offset, c.stored_size AS storedSize, c.compression${extra}
  FROM chunks c JOIN packs p ON p.id = c.pack_id WHERE c.chunk_hash IN (SELECT value FROM json_each(?1)) AND c.state = 'valid'`;
/** NAR download answers kept between changes (see narToServe). */
const SERVED_MAX = 4096;

interface CacheRow {
  id: number; name: string; is_public: number; store_dir: string; priority: number;
  upstream_cache_key_names: string; signing_key: string; retention_period: number | null;
  quota_bytes: number | null; created_at: number;
}

interface ObjectRow {
  cache_id: number; store_path_hash: string; store_path: string; refs: string;
  system: string | null; deriver: string | null; ca: string | null; sigs: string;
  server_sig: string | null; server_sig_key: string | null; nar_id: number; nar_hash: string;
  nar_size: number; file_size: number; compression: Compression | "mixed";
}

function toCache(r: CacheRow): CacheRecord {
  return {
    id: r.id, name: r.name, isPublic: r.is_public === 1, storeDir: r.store_dir,
    priority: r.priority, upstreamCacheKeyNames: JSON.parse(r.upstream_cache_key_names),
    signingKey: r.signing_key, retentionPeriod: r.retention_period, quotaBytes: r.quota_bytes ?? null,
    createdAt: r.created_at,
  };
}

function toObject(r: ObjectRow): ObjectView {
  return {
    cacheId: r.cache_id, storePathHash: r.store_path_hash, storePath: r.store_path,
    references: JSON.parse(r.refs), system: r.system, deriver: r.deriver, ca: r.ca,
    sigs: JSON.parse(r.sigs), serverSig: r.server_sig, serverSigKey: r.server_sig_key,
    narId: r.nar_id, narHash: r.nar_hash, narSize: r.nar_size, fileSize: r.file_size,
    compression: r.compression,
  };
}

// One indexed lookup per narinfo: file size and compression are kept on the NAR row.
const OBJECT_SELECT = `
  SELECT o.cache_id, o.store_path_hash, o.store_path, o.refs, o.system, o.deriver, o.ca, o.sigs,
         o.server_sig, o.server_sig_key, o.nar_id, n.nar_hash, n.nar_size, n.file_size, n.compression
  FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'`;

/** The columns of a NAR's chunk (ChunkRow), from `nar_chunks nc` joined as CHUNK_JOINS. */
const CHUNK_COLUMNS = `c.id AS chunk_id, c.chunk_hash, c.chunk_size, c.compression, c.pack_id,
  p.storage_key, p.size AS pack_size, c.pack_offset, c.stored_size`;
const CHUNK_JOINS = "JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id";

/** A chunk of a NAR as the narChunks and narToServe queries return it. */
interface ChunkRow {
  chunk_id: number; chunk_hash: string; chunk_size: number; compression: Compression;
  pack_id: number; storage_key: string; pack_size: number; pack_offset: number; stored_size: number;
}

function toChunkLocation(r: ChunkRow): ChunkLocation {
  return {
    chunkId: r.chunk_id, hash: r.chunk_hash, size: r.chunk_size, compression: r.compression,
    packId: r.pack_id, packKey: r.storage_key, packSize: r.pack_size, offset: r.pack_offset, storedSize: r.stored_size,
  };
}

/** What a commit needs of each chunk its NAR lists. */
interface ChunkRef {
  id: number;
  stored_size: number;
  compression: Compression;
}

/**
 * A NAR's stored size (its chunks' compressed sizes, a repeated chunk counted each time it occurs)
 * and the compression it is served as: its chunks' common one, or 'mixed'.
 */
function narSummary(chunks: ChunkRef[]): { fileSize: number; compression: Compression | "mixed" } {
  let fileSize = 0;
  let compression: Compression | "mixed" | null = null;
  for (const ch of chunks) {
    fileSize += ch.stored_size;
    compression = compression === null || compression === ch.compression ? ch.compression : "mixed";
  }
  return { fileSize, compression: compression ?? "none" };
}

/**
 * The database holds every cache's secret signing key: it is created 0600 before SQLite opens it
 * (SQLite gives its -wal and -shm files the database file's mode), and files an older release
 * left readable are made private.
 */
function keepPrivate(path: string): void {
  if (path === ":memory:") return;
  closeSync(openSync(path, "a", 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}

/** The embedded metadata store: one SQLite file in WAL mode. */
export class SqliteMetaStore implements MetaStore {
  private readonly db: Database;
  private readonly stmt: Record<string, Statement>;

  constructor(private readonly path: string) {
    keepPrivate(path);
    this.db = new Database(path, { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL");
    this.db.exec("PRAGMA synchronous = NORMAL");
    this.db.exec("PRAGMA busy_timeout = 5000");
    this.migrate();
    this.db.exec("PRAGMA foreign_keys = ON");
    this.stmt = this.prepare();
  }

  private migrate(): void {
    this.db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const row = this.db.query("SELECT version FROM schema_version").get() as { version: number } | null;
    let version = row?.version ?? 0;
    if (!row) this.db.exec("INSERT INTO schema_version (version) VALUES (0)");
    // Foreign keys are enforced only once migrations have run (the pragma cannot change inside a
    // transaction): a migration that rebuilds a table must not cascade its drop into the rows
    // that reference it. Each one is checked for dangling references before it commits.
    for (; version < MIGRATIONS.length; version++) {
      const sql = MIGRATIONS[version]!;
      this.db.transaction(() => {
        this.db.exec(sql);
        const dangling = this.db.query("PRAGMA foreign_key_check").all();
        if (dangling.length > 0) throw new Error(`migration ${version + 1} left ${dangling.length} dangling reference(s)`);
        this.db.query("UPDATE schema_version SET version = ?").run(version + 1);
      }).immediate();
    }
  }

  private prepare(): Record<string, Statement> {
    const q = (sql: string) => this.db.prepare(sql);
    return {
      getCache: q("SELECT * FROM caches WHERE name = ?"),
      cacheUnchanged: q("SELECT 1 FROM caches WHERE id = ? AND name = ? AND created_at = ?"),
      insertCache: q(`INSERT INTO caches (name, is_public, store_dir, priority, upstream_cache_key_names,
        signing_key, retention_period, quota_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      deleteCache: q("DELETE FROM caches WHERE id = ? AND name = ? AND created_at = ?"),
      getObject: q(`${OBJECT_SELECT} WHERE o.cache_id = ? AND o.store_path_hash = ?`),
      // A path whose NAR fsck found damaged is hidden: missing to pushers too, so a re-push heals it.
      // A path whose NAR fsck found damaged is hidden: missing to pushers too, so a re-push heals it.
      presentPaths: q(`SELECT o.id, o.store_path_hash AS h, o.last_accessed_at AS at FROM objects o
        JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'
        WHERE o.cache_id = ?1 AND o.store_path_hash IN (SELECT value FROM json_each(?2))`),
      touchIds: q("UPDATE objects SET last_accessed_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))"),
      totalChanges: q("SELECT total_changes() AS c"),
      dataVersion: q("PRAGMA data_version"),
      // One statement for a NAR download: the NAR, one object of the cache using it, its chunks.
      narToServe: q(`SELECT o.store_path_hash, n.id AS nar_id, n.nar_size, n.file_size, n.compression AS nar_compression,
          ${CHUNK_COLUMNS}
        FROM nars n
        JOIN objects o ON o.id = (SELECT id FROM objects WHERE nar_id = n.id AND cache_id = ?1 LIMIT 1)
        JOIN nar_chunks nc ON nc.nar_id = n.id ${CHUNK_JOINS}
        WHERE n.nar_hash = ?2 AND n.state = 'valid' ORDER BY nc.seq`),
      updateSig: q("UPDATE objects SET server_sig = ?, server_sig_key = ? WHERE cache_id = ? AND store_path_hash = ?"),
      setSigs: q("UPDATE objects SET sigs = ? WHERE cache_id = ? AND store_path_hash = ? AND nar_id = ? AND sigs = ?"),
      touch: q("UPDATE objects SET last_accessed_at = ? WHERE cache_id = ? AND store_path_hash = ?"),
      findChunks: q(findChunksSql("")),
      findChunksShown: q(findChunksSql(`, ${chunkShownIn("IN (SELECT value FROM json_each(?2))")} AS shown`)),
      chunkIdByHash: q("SELECT id, state, stored_size, compression FROM chunks WHERE chunk_hash = ?"),
      reviveChunk: q("UPDATE chunks SET state = 'valid', mark_seq = NULL WHERE id = ? AND state = 'deleting'"),
      findNar: q("SELECT id, nar_hash, nar_size, num_chunks, state FROM nars WHERE nar_hash = ?"),
      narChunks: q(`SELECT ${CHUNK_COLUMNS} FROM nar_chunks nc ${CHUNK_JOINS} WHERE nc.nar_id = ? ORDER BY nc.seq`),
      insertPack: q("INSERT INTO packs (storage_key, size, state, created_at) VALUES (?, 0, 'pending', ?)"),
      deletePack: q("DELETE FROM packs WHERE id = ? AND state = 'pending'"),
      sealPack: q("UPDATE packs SET state = 'valid', size = ? WHERE id = ? AND state = 'pending'"),
      packState: q("SELECT state FROM packs WHERE id = ?"),
      insertChunk: q(`INSERT INTO chunks (chunk_hash, chunk_size, compression, pack_id, pack_offset,
          stored_size, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'valid', ?)
        ON CONFLICT (chunk_hash) DO UPDATE SET compression = excluded.compression,
          pack_id = excluded.pack_id, pack_offset = excluded.pack_offset,
          stored_size = excluded.stored_size, state = 'valid', mark_seq = NULL
        WHERE chunks.state != 'valid' OR ?8
        RETURNING id, stored_size, compression`),
      insertNar: q(`INSERT INTO nars (nar_hash, nar_size, num_chunks, file_size, compression, state, created_at)
        VALUES (?, ?, ?, ?, ?, 'valid', ?)`),
      healNar: q("UPDATE nars SET state = 'valid', num_chunks = ?, file_size = ?, compression = ? WHERE id = ?"),
      deleteNarChunks: q("DELETE FROM nar_chunks WHERE nar_id = ?"),
      insertNarChunk: q("INSERT INTO nar_chunks (nar_id, seq, chunk_id) VALUES (?, ?, ?)"),
      upsertObject: q(`INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, system,
          deriver, ca, sigs, server_sig, server_sig_key, created_by, created_at, last_accessed_at,
          pushed_by_token, pushed_from)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (cache_id, store_path_hash) DO UPDATE SET store_path = excluded.store_path,
          nar_id = excluded.nar_id, refs = excluded.refs, system = excluded.system,
          deriver = excluded.deriver, ca = excluded.ca, sigs = excluded.sigs,
          server_sig = excluded.server_sig, server_sig_key = excluded.server_sig_key,
          created_by = excluded.created_by, created_at = excluded.created_at,
          last_accessed_at = excluded.last_accessed_at, pushed_by_token = excluded.pushed_by_token,
          pushed_from = excluded.pushed_from
        RETURNING id`),
      // A path pushed again keeps its row: its references are replaced with the new list's.
      clearObjectRefs: q("DELETE FROM object_refs WHERE object_id = ?"),
      insertObjectRef: q("INSERT OR IGNORE INTO object_refs (cache_id, ref_hash, object_id) VALUES (?, ?, ?)"),
      // What a path adds to its cache's figures (see dashboard-sql.ts), read around each write of it.
      pathContribution: q(`SELECT o.cache_id AS cacheId, o.created_at AS createdAt, n.nar_size AS narSize,
          n.file_size AS fileSize, n.state FROM objects o JOIN nars n ON n.id = o.nar_id
        WHERE o.cache_id = ? AND o.store_path_hash = ?`),
      narContributions: q(`SELECT o.cache_id AS cacheId, o.created_at AS createdAt, n.nar_size AS narSize,
          n.file_size AS fileSize FROM objects o JOIN nars n ON n.id = o.nar_id WHERE o.nar_id = ?`),
      // One writer at a time: shard 0 only.
      bumpCounters: q(`INSERT INTO cache_counters (cache_id, shard, paths, nar_bytes, stored_bytes, last_push_at)
        VALUES (?, 0, ?, ?, ?, ?) ${dash.BUMP_COUNTERS_SET}`),
      bumpDaily: q(`INSERT INTO cache_daily (cache_id, day, shard, paths, nar_bytes, stored_bytes)
        VALUES (?, ?, 0, ?, ?, ?) ${dash.BUMP_DAILY_SET}`),
    };
  }

  private checkpointer: Checkpointer | null = null;

  /**
   * For the server: WAL checkpoints run on a worker thread instead of inside the commits of the
   * serving thread (see checkpointer.ts). Short-lived commands keep SQLite's own.
   */
  checkpointInBackground(log: (line: string) => void = () => {}): void {
    if (this.checkpointer) return;
    try {
      this.checkpointer = startCheckpointer(this.path, log);
    } catch (err) {
      // No worker thread: SQLite's own checkpoints, in the commits, as before.
      log(`checkpointer: not started (${(err as Error).message}); checkpoints stay in the commits`);
      return;
    }
    this.db.exec(`PRAGMA wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
  }

  async ping(): Promise<void> {
    this.db.query("SELECT 1").get();
  }

  async pushLog(cacheId: number, filter: { sub?: string; tokenId?: string }): Promise<PushRecord[]> {
    const rows = this.db.query(`SELECT store_path, store_path_hash, created_by, pushed_by_token, pushed_from, created_at
      FROM objects WHERE cache_id = ?1 AND (?2 IS NULL OR created_by = ?2) AND (?3 IS NULL OR pushed_by_token = ?3)
      ORDER BY created_at DESC, id DESC`).all(cacheId, filter.sub ?? null, filter.tokenId ?? null) as PushRow[];
    return rows.map(pushRecord);
  }

  async recordAudit(e: Omit<AuditEntry, "id" | "at">): Promise<void> {
    this.db.query("INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)")
      .run(Math.floor(Date.now() / 1000), e.actor, e.action, e.target, e.detail);
  }

  async auditLog(): Promise<AuditEntry[]> {
    return this.db.query("SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id").all() as AuditEntry[];
  }

  close(): void {
    this.checkpointer?.stop();
    this.checkpointer = null;
    this.db.close();
  }

  /**
   * Every request looks its cache up, so found caches are kept for CACHE_RECORD_MS (frozen: the
   * same record goes to every caller), and so are names that hold no cache. A change made through
   * this store is seen at once; one made by another process (none changes caches today) within
   * that time.
   */
  async getCache(name: string): Promise<CacheRecord | null> {
    const at = performance.now();
    const kept = this.cacheRecords.get(name);
    if (kept && at - kept.at < CACHE_RECORD_MS) return kept.record;
    const row = this.stmt.getCache!.get(name) as CacheRow | null;
    const record = row ? toCache(row) : null;
    if (record) {
      Object.freeze(record.upstreamCacheKeyNames);
      Object.freeze(record);
    }
    // Misses are kept like hits: a private cache must cost what a missing name costs, or timing
    // would tell them apart (a miss that went to the database was 4-8 us slower).
    if (this.cacheRecords.size >= CACHE_RECORDS_MAX) this.cacheRecords.clear();
    this.cacheRecords.set(name, { record, at });
    return record;
  }

  private readonly cacheRecords = new Map<string, { record: CacheRecord | null; at: number }>();

  async createCache(c: NewCache): Promise<CacheRecord> {
    this.stmt.insertCache!.run(c.name, c.isPublic ? 1 : 0, c.storeDir, c.priority,
      JSON.stringify(c.upstreamCacheKeyNames), c.signingKey, c.retentionPeriod, c.quotaBytes ?? null, now());
    this.cacheRecords.delete(c.name);
    return (await this.getCache(c.name))!;
  }

  async updateCache(cache: CacheIdentity, patch: CachePatch): Promise<CacheRecord | null> {
    const columns: Record<keyof CachePatch, string> = {
      isPublic: "is_public", storeDir: "store_dir", priority: "priority",
      upstreamCacheKeyNames: "upstream_cache_key_names", signingKey: "signing_key",
      retentionPeriod: "retention_period", quotaBytes: "quota_bytes",
    };
    const sets: string[] = [];
    const values: (string | number | null)[] = [];
    for (const [key, column] of Object.entries(columns) as [keyof CachePatch, string][]) {
      const value = patch[key];
      if (value === undefined) continue;
      sets.push(`${column} = ?`);
      if (typeof value === "boolean") values.push(value ? 1 : 0);
      else if (Array.isArray(value)) values.push(JSON.stringify(value));
      else values.push(value);
    }
    // Conditional on the cache being the one authorised: a cache destroyed and recreated under
    // the same name meanwhile is another tenant's, and is left alone.
    const changed = this.db.prepare(`UPDATE caches SET ${sets.length > 0 ? sets.join(", ") : "id = id"}
      WHERE id = ? AND name = ? AND created_at = ?`).run(...values, cache.id, cache.name, cache.createdAt).changes;
    this.cacheRecords.delete(cache.name);
    return changed > 0 ? this.getCache(cache.name) : null;
  }

  async deleteCache(cache: CacheIdentity): Promise<boolean> {
    this.cacheRecords.delete(cache.name);
    return this.stmt.deleteCache!.run(cache.id, cache.name, cache.createdAt).changes > 0;
  }

  /**
   * One SELECT (the hashes go as one JSON array). With touchAt, present rows last accessed before
   * staleBefore are rewritten in the same transaction, so the answer is atomic against a
   * collector's expiry. Rows accessed since staleBefore are left alone: they are fresher than any
   * retention cutoff (see types.ts), and then nothing is written at all.
   */
  async missingPaths(cacheId: number, hashes: string[], touchAt?: number, staleBefore = Number.MAX_SAFE_INTEGER): Promise<string[]> {
    if (hashes.length === 0) return [];
    const list = JSON.stringify(hashes);
    const read = () => this.stmt.presentPaths!.all(cacheId, list) as { id: number; h: string; at: number }[];
    let touched = 0;
    const readAndTouch = () => {
      const rows = read();
      const stale = rows.filter((r) => r.at < staleBefore).map((r) => r.id);
      if (stale.length > 0) touched = this.stmt.touchIds!.run(touchAt!, JSON.stringify(stale)).changes;
      return rows;
    };
    let present: { h: string }[];
    if (touchAt === undefined) present = read();
    else {
      // Deferred: a read that finds everything fresh never takes the write lock. If another
      // process wrote since the read began, the upgrade fails at once (SQLITE_BUSY): read again
      // holding the write lock.
      try {
        present = this.db.transaction(readAndTouch).deferred();
      } catch (err) {
        if (!/SQLITE_BUSY|database is locked/i.test(`${(err as { code?: string }).code} ${(err as Error).message}`)) throw err;
        present = this.db.transaction(readAndTouch).immediate();
      }
      if (touched > 0) this.checkpointer?.committed();
    }
    const have = new Set(present.map((r) => r.h));
    return hashes.filter((h) => !have.has(h));
  }

  async getObject(cacheId: number, storePathHash: string): Promise<ObjectView | null> {
    const row = this.stmt.getObject!.get(cacheId, storePathHash) as ObjectRow | null;
    return row ? toObject(row) : null;
  }

  /**
   * NAR downloads repeat: the answer is kept until the database changes at all. A change by this
   * connection moves total_changes(), one by any other connection (garret gc, fsck) moves
   * PRAGMA data_version; checking both costs about 1.5 us, the query 5-10.
   */
  async narToServe(cacheId: number, narHash: string): Promise<ServedNar | null> {
    const generation = `${(this.stmt.totalChanges!.get() as { c: number }).c}:${(this.stmt.dataVersion!.get() as { data_version: number }).data_version}`;
    if (generation !== this.servedGeneration) {
      this.served.clear();
      this.servedGeneration = generation;
    }
    const key = `${cacheId}:${narHash}`;
    const kept = this.served.get(key);
    if (kept) return kept;
    const found = this.readNarToServe(cacheId, narHash);
    if (found) {
      // Frozen, chunks and all: every request for this NAR gets this same object.
      for (const c of found.chunks) Object.freeze(c);
      Object.freeze(found.chunks);
      if (this.served.size >= SERVED_MAX) this.served.clear();
      this.served.set(key, Object.freeze(found));
    }
    return found;
  }

  async narInCaches(narHash: string, cacheIds: number[]): Promise<boolean> {
    return this.db.query(`SELECT 1 FROM nars n JOIN objects o ON o.nar_id = n.id
      WHERE n.nar_hash = ? AND n.state = 'valid' AND o.cache_id + 0 IN (SELECT value FROM json_each(?)) LIMIT 1`)
      .get(narHash, JSON.stringify(cacheIds)) !== null;
  }

  async narSharing(narId: number, cacheIds: number[]): Promise<{ fileSize: number; unsharedBytes: number }> {
    const r = this.db.query(NAR_SHARING).get({ nar: narId, caches: JSON.stringify(cacheIds) }) as { file_size: number | null; unshared: number };
    return { fileSize: r.file_size ?? 0, unsharedBytes: r.unshared };
  }

  private servedGeneration = "";
  private readonly served = new Map<string, ServedNar>();

  private readNarToServe(cacheId: number, narHash: string): ServedNar | null {
    const rows = this.stmt.narToServe!.all(cacheId, narHash) as (ChunkRow & {
      store_path_hash: string; nar_id: number; nar_size: number; file_size: number; nar_compression: Compression | "mixed";
    })[];
    const first = rows[0];
    if (!first) return null;
    return {
      storePathHash: first.store_path_hash, narId: first.nar_id, narHash, narSize: first.nar_size,
      fileSize: first.file_size, compression: first.nar_compression, chunks: rows.map(toChunkLocation),
    };
  }

  async updateServerSig(cacheId: number, storePathHash: string, sig: string, key: string): Promise<void> {
    this.stmt.updateSig!.run(sig, key, cacheId, storePathHash);
  }

  async setExtraSigs(cacheId: number, storePathHash: string, seen: { narId: number; sigs: string[] }, sigs: string[]): Promise<boolean> {
    const changed = this.stmt.setSigs!.run(JSON.stringify(sigs), cacheId, storePathHash, seen.narId, JSON.stringify(seen.sigs)).changes > 0;
    if (changed) this.checkpointer?.committed();
    return changed;
  }

  async touchObjects(cacheId: number, hashes: string[], at: number): Promise<void> {
    if (hashes.length === 0) return;
    this.db.transaction(() => {
      for (const h of hashes) this.stmt.touch!.run(at, cacheId, h);
    }).immediate();
    this.checkpointer?.committed();
  }

  async findChunks(hashes: string[], shownIn?: number[]): Promise<Map<string, IndexedChunk>> {
    const found = new Map<string, IndexedChunk>();
    if (hashes.length === 0) return found;
    const rows = (shownIn ? this.stmt.findChunksShown!.all(JSON.stringify(hashes), JSON.stringify(shownIn))
      : this.stmt.findChunks!.all(JSON.stringify(hashes))) as (IndexedChunk & { hash: string; shown?: number | boolean })[];
    for (const { hash, shown, ...chunk } of rows) found.set(hash, shown === undefined ? chunk : { ...chunk, shown: Boolean(shown) });
    return found;
  }

  async findNar(narHash: string): Promise<NarRecord | null> {
    const r = this.stmt.findNar!.get(narHash) as
      | { id: number; nar_hash: string; nar_size: number; num_chunks: number; state: string }
      | null;
    return r && { id: r.id, narHash: r.nar_hash, narSize: r.nar_size, numChunks: r.num_chunks, state: r.state };
  }

  async narChunks(narId: number): Promise<ChunkLocation[]> {
    return (this.stmt.narChunks!.all(narId) as ChunkRow[]).map(toChunkLocation);
  }

  async createPendingPack(storageKey: string): Promise<number> {
    return Number(this.stmt.insertPack!.run(storageKey, now()).lastInsertRowid);
  }

  async forgetPack(packId: number): Promise<void> {
    this.stmt.deletePack!.run(packId);
  }

  /**
   * Group commit: the commits requested in one turn of the event loop (the small uploads whose
   * shared pack just became durable, typically) run in one transaction, each in a savepoint of
   * its own, so one failing leaves the others alone. A lone commit waits one turn.
   */
  commitUpload(c: UploadCommit): Promise<{ narId: number; narExisted: boolean }> {
    return new Promise((resolve, reject) => {
      this.commitQueue.push({ commit: c, resolve, reject });
      if (this.commitQueue.length === 1) setImmediate(() => this.flushCommits());
    });
  }

  private commitQueue: {
    commit: UploadCommit;
    resolve(r: { narId: number; narExisted: boolean }): void;
    reject(err: unknown): void;
  }[] = [];

  private flushCommits(): void {
    const batch = this.commitQueue.splice(0);
    const results: ({ ok: { narId: number; narExisted: boolean } } | { err: unknown })[] = [];
    // Shared packs a commit of this batch has sealed already: the others need not seal them again.
    const sealed = new Set<number>();
    try {
      // IMMEDIATE: take the write lock before the first read. A deferred transaction that reads
      // and then writes fails at once with SQLITE_BUSY when another process (garret gc) wrote.
      this.db.transaction(() => {
        for (const item of batch) {
          try {
            results.push({ ok: this.commitOne(item.commit, sealed) });
            for (const p of item.commit.packs) if (p.shared) sealed.add(p.id);
          } catch (err) {
            results.push({ err });
          }
        }
      }).immediate();
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    this.checkpointer?.committed();
    batch.forEach((item, i) => {
      const r = results[i]!;
      if ("ok" in r) item.resolve(r.ok);
      else item.reject(r.err);
    });
  }

  /**
   * One upload's commit, in a savepoint (bun:sqlite nests a transaction inside another so).
   * `sealedShared`: shared packs an earlier commit of the same transaction sealed.
   */
  private commitOne(c: UploadCommit, sealedShared: ReadonlySet<number>): { narId: number; narExisted: boolean } {
    const t = now();
    const deltas = new dash.Deltas();
    return this.db.transaction(() => {
      this.assertCacheUnchanged(c.cache);
      if (c.stagedId !== undefined) this.consumeStaged(c.stagedId);
      for (const p of c.packs) {
        if (sealedShared.has(p.id) || this.stmt.sealPack!.run(p.size, p.id).changes === 1) continue;
        // Only a collector that wrongly judged the upload dead could have taken the pending pack
        // (or, for a shared one sealed by another upload, a valid pack it judged empty).
        const sealed = p.shared && (this.stmt.packState!.get(p.id) as { state: string } | null)?.state === "valid";
        if (!sealed) throw new Error(`internal: pack ${p.id} is no longer pending`);
      }
      const chunks = new Map<string, ChunkRef>();
      for (const ch of c.newChunks) {
        // A concurrent upload may have indexed the same chunk first: keep its copy, unless ours
        // heals an entry whose bytes were lost (or the collector was about to delete it). A row
        // comes back when ours was stored; a kept copy is looked up below like any reused chunk.
        const row = this.stmt.insertChunk!.get(ch.hash, ch.size, ch.compression, ch.packId, ch.offset, ch.storedSize, t, ch.heals ? 1 : 0) as ChunkRef | null;
        if (row) chunks.set(ch.hash, row);
      }
      // Every chunk this NAR reuses must still be indexed with its bytes in place. The collector
      // may have marked one 'deleting' since the upload looked it up; its bytes stay until no
      // upload that could have looked it up is in flight (see src/gc/collect.ts), so it is safe to
      // take it back here, inside the same transaction that references it.
      for (const hash of c.chunkHashes) {
        if (chunks.has(hash)) continue;
        const chunk = this.stmt.chunkIdByHash!.get(hash) as (ChunkRef & { state: string }) | null;
        if (!chunk) throw new Error(`internal: chunk ${hash} vanished before commit`);
        if (chunk.state === "deleting") this.stmt.reviveChunk!.run(chunk.id);
        else if (chunk.state !== "valid") throw new Error(`chunk ${hash} was found damaged during this upload; push again`);
        chunks.set(hash, chunk);
      }
      const existing = this.stmt.findNar!.get(c.narHash) as { id: number; state: string } | null;
      let narId: number;
      if (existing && existing.state === "valid") {
        narId = existing.id;
      } else {
        const { fileSize, compression } = narSummary(c.chunkHashes.map((h) => chunks.get(h)!));
        if (existing) {
          // A damaged (hidden) NAR: this upload proved possession of every byte again; heal it.
          narId = existing.id;
          this.stmt.deleteNarChunks!.run(narId);
          this.stmt.healNar!.run(c.chunkHashes.length, fileSize, compression, narId);
          // Every path using it, in any cache, counts again.
          for (const p of this.stmt.narContributions!.all(narId) as dash.PathContribution[]) deltas.add(p, 1);
        } else {
          narId = Number(this.stmt.insertNar!.run(c.narHash, c.narSize, c.chunkHashes.length, fileSize, compression, t).lastInsertRowid);
        }
        c.chunkHashes.forEach((hash, seq) => this.stmt.insertNarChunk!.run(narId, seq, chunks.get(hash)!.id));
      }
      const o = c.object;
      const old = this.stmt.pathContribution!.get(c.cache.id, o.storePathHash) as (dash.PathContribution & { state: string }) | null;
      if (old && old.state === "valid") deltas.add(old, -1);
      const { id: objectId } = this.stmt.upsertObject!.get(c.cache.id, o.storePathHash, o.storePath, narId,
        JSON.stringify(o.references), o.system, o.deriver, o.ca, JSON.stringify(o.sigs),
        o.serverSig, o.serverSigKey, o.createdBy, t, t, o.pushedByToken ?? null, o.pushedFrom ?? null) as { id: number };
      if (old) this.stmt.clearObjectRefs!.run(objectId);
      for (const ref of refHashes(o.storePathHash, o.references)) this.stmt.insertObjectRef!.run(c.cache.id, ref, objectId);
      deltas.add(this.stmt.pathContribution!.get(c.cache.id, o.storePathHash) as dash.PathContribution, 1);
      deltas.pushed(c.cache.id, t);
      this.applyDeltas(deltas);
      return { narId, narExisted: existing !== null && existing.state === "valid" };
    })();
  }

  /** Inside the write transaction that made them: the figures move with the paths. */
  private applyDeltas(d: dash.Deltas): void {
    for (const c of d.counters()) this.stmt.bumpCounters!.run(c.cacheId, c.paths, c.narBytes, c.storedBytes, c.lastPushAt);
    for (const x of d.daily()) this.stmt.bumpDaily!.run(x.cacheId, x.day, x.paths, x.narBytes, x.storedBytes);
  }

  /** Inside a commit: the staged NAR it publishes is still staged, and durable; its record and lease go. */
  private consumeStaged(id: number): void {
    const r = this.db.query(STAGING_SQL.consume).get(id) as { lease_id: number } | null;
    if (!r) throw new StagingGone(id);
    this.db.query(STAGING_SQL.dropLease).run(r.lease_id);
  }

  /** Inside a write transaction: the cache is still the one the request was authorised for. */
  private assertCacheUnchanged(cache: CacheIdentity): void {
    if (this.stmt.cacheUnchanged!.get(cache.id, cache.name, cache.createdAt) === null) throw new CacheChanged(cache);
  }

  // --- Garbage collection

  async listCaches(): Promise<CacheRecord[]> {
    return (this.db.query("SELECT * FROM caches ORDER BY id").all() as CacheRow[]).map(toCache);
  }

  async acquireUploadLease(at: number, ttl: number): Promise<number> {
    return Number(this.db.query("INSERT INTO upload_leases (started_at, expires_at) VALUES (?, ?)").run(at, at + ttl).lastInsertRowid);
  }

  async renewUploadLease(id: number, at: number, ttl: number): Promise<void> {
    this.db.query("UPDATE upload_leases SET expires_at = ? WHERE id = ?").run(at + ttl, id);
  }

  async releaseUploadLease(id: number): Promise<void> {
    this.db.query("DELETE FROM upload_leases WHERE id = ?").run(id);
  }

  // --- Native staging (issue 15)

  async stageNar(rec: NewStagedNar, cache: CacheIdentity, quota: number): Promise<{ id: number; replaced: StagedNarRecord | null } | null> {
    try {
      return this.db.transaction(() => {
        this.assertCacheUnchanged(cache);
        const old = this.db.query(STAGING_SQL.replace)
          .get(rec.cacheId, rec.file) as StagedRow | null;
        if (old) this.db.query(STAGING_SQL.dropLease).run(old.lease_id);
        if (this.liveStagedBytes(rec.owner, rec.createdAt) + rec.narSize > quota) throw new OverQuota();
        this.db.query(STAGING_SQL.leaseUntil).run(rec.expiresAt, rec.leaseId);
        const { id } = this.db.query(STAGING_SQL.insert).get(rec.cacheId, rec.file, rec.owner, rec.leaseId, rec.narHash, rec.narSize,
          JSON.stringify(rec.parts), rec.createdAt, rec.expiresAt) as { id: number };
        return { id, replaced: old && toStaged(old) };
      }).immediate();
    } catch (err) {
      if (err instanceof OverQuota) return null;
      throw err;
    }
  }

  async findStagedNar(cacheId: number, file: string, at: number): Promise<StagedNarRecord | null> {
    const r = this.db.query(STAGING_SQL.find)
      .get(cacheId, file, at) as StagedRow | null;
    return r && toStaged(r);
  }

  async stagedBytes(owner: string, at: number): Promise<number> {
    return this.liveStagedBytes(owner, at);
  }

  /** stagedBytes, callable inside a transaction (stageNar's quota check). */
  private liveStagedBytes(owner: string, at: number): number {
    return (this.db.query(STAGING_SQL.liveBytes)
      .get(owner, at) as { n: number }).n;
  }

  async markStagedDurable(id: number, parts: StagedParts): Promise<boolean> {
    return this.db.query(STAGING_SQL.markDurable).run(JSON.stringify(parts), id).changes === 1;
  }

  async unstageNar(id: number): Promise<StagedNarRecord | null> {
    return this.db.transaction(() => {
      const r = this.db.query(STAGING_SQL.unstage).get(id) as StagedRow | null;
      if (r) this.db.query(STAGING_SQL.dropLease).run(r.lease_id);
      return r && toStaged(r);
    }).immediate();
  }

  async expireStagedNars(at: number): Promise<number> {
    return this.db.transaction(() => {
      const rows = this.db.query(STAGING_SQL.expire).all(at) as StagedRow[];
      for (const r of rows) this.db.query(STAGING_SQL.dropLease).run(r.lease_id);
      // Nobody reads a pending pack and nobody will commit into these: their bytes go in this run.
      for (const id of ownPackIds(rows)) this.db.query("UPDATE packs SET state = 'deleting', deleting_at = 0 WHERE id = ? AND state = 'pending'").run(id);
      return rows.length;
    }).immediate();
  }

  async oldestLiveLease(at: number): Promise<number | null> {
    const r = this.db.query("SELECT MIN(started_at) AS t FROM upload_leases WHERE expires_at > ?").get(at) as { t: number | null };
    return r.t;
  }

  async lockGc(holder: string, at: number, ttl: number): Promise<boolean> {
    return this.db.transaction(() => {
      const row = this.db.query("SELECT holder, expires_at FROM gc_lock WHERE id = 1").get() as
        | { holder: string; expires_at: number } | null;
      if (row && row.holder !== holder && row.expires_at > at) return false;
      this.db.query(`INSERT INTO gc_lock (id, holder, expires_at) VALUES (1, ?, ?)
        ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at`).run(holder, at + ttl);
      return true;
    }).immediate();
  }

  async unlockGc(holder: string): Promise<void> {
    this.db.query("DELETE FROM gc_lock WHERE id = 1 AND holder = ?").run(holder);
  }

  /** SQLite has one connection: the handle is this store, inside a transaction held open meanwhile. */
  async simulate<T>(fn: (meta: MetaStore) => Promise<T>): Promise<T> {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      return await fn(this);
    } finally {
      this.db.exec("ROLLBACK");
    }
  }

  async expireObjects(cacheId: number, select: (objects: GcObject[], pins: PinRecord[]) => Iterable<number>): Promise<number> {
    return this.db.transaction(() => {
      const rows = this.db.query(`SELECT o.id, o.store_path_hash, o.store_path, o.refs, o.last_accessed_at, o.nar_id, n.file_size,
          o.created_by, o.pushed_by_token, o.created_at, n.nar_size, n.state
        FROM objects o JOIN nars n ON n.id = o.nar_id WHERE o.cache_id = ?`).all(cacheId) as
        { id: number; store_path_hash: string; store_path: string; refs: string; last_accessed_at: number; nar_id: number; file_size: number;
          created_by: string | null; pushed_by_token: string | null; created_at: number; nar_size: number; state: string }[];
      const objects: GcObject[] = rows.map((r) => ({
        id: r.id, storePathHash: r.store_path_hash, storePath: r.store_path, references: JSON.parse(r.refs), lastAccessedAt: r.last_accessed_at,
        narId: r.nar_id, fileSize: r.file_size, createdBy: r.created_by, pushedByToken: r.pushed_by_token, createdAt: r.created_at,
      }));
      const del = this.db.query("DELETE FROM objects WHERE id = ? AND cache_id = ?");
      const byId = new Map(rows.map((r) => [r.id, r]));
      const deltas = new dash.Deltas();
      let n = 0;
      for (const id of select(objects, this.pinsOf(cacheId))) {
        if (del.run(id, cacheId).changes === 0) continue;
        n++;
        const r = byId.get(id)!;
        if (r.state === "valid") deltas.add({ cacheId, createdAt: r.created_at, narSize: r.nar_size, fileSize: r.file_size }, -1);
      }
      this.applyDeltas(deltas);
      return n;
    }).immediate();
  }

  async deleteUnreferencedNars(): Promise<number> {
    return this.db.query("DELETE FROM nars WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.nar_id = nars.id)").run().changes;
  }

  async markUnreferencedChunks(): Promise<number> {
    return this.db.transaction(() => {
      const seq = (this.db.query("SELECT seq FROM sqlite_sequence WHERE name = 'upload_leases'").get() as { seq: number } | null)?.seq ?? 0;
      // Only valid chunks: a damaged one must never be revived by a commit (see sweepChunks).
      return this.db.query(`UPDATE chunks SET state = 'deleting', mark_seq = ?
        WHERE state = 'valid' AND NOT EXISTS (SELECT 1 FROM nar_chunks nc WHERE nc.chunk_id = chunks.id)`).run(seq).changes;
    }).immediate();
  }

  async sweepChunks(at: number): Promise<{ count: number; bytes: number }> {
    return this.db.transaction(() => {
      // A chunk marked when the highest lease id was S can have been looked up as valid only by an
      // upload holding a lease <= S. Once none of those is live, nobody can reference it any more.
      const live = (this.db.query("SELECT MIN(id) AS id FROM upload_leases WHERE expires_at > ?").get(at) as { id: number | null }).id;
      const bound = live ?? Number.MAX_SAFE_INTEGER;
      // Damaged chunks nothing references go at once: no upload can reuse them (findChunks skips
      // them, and a commit that finds one damaged or gone fails rather than reference it).
      const where = `((state = 'deleting' AND mark_seq < ?1) OR state = 'damaged')
        AND NOT EXISTS (SELECT 1 FROM nar_chunks nc WHERE nc.chunk_id = chunks.id)`;
      const sum = this.db.query(`SELECT COUNT(*) AS n, COALESCE(SUM(stored_size), 0) AS b FROM chunks WHERE ${where}`).get(bound) as { n: number; b: number };
      this.db.query(`DELETE FROM chunks WHERE ${where}`).run(bound);
      this.db.query("DELETE FROM upload_leases WHERE expires_at <= ?").run(at);
      return { count: sum.n, bytes: sum.b };
    }).immediate();
  }

  async markEmptyPacks(at: number): Promise<number> {
    // Not a pack made since the oldest live upload began: a staged NAR (or an upload still
    // running) may yet commit chunks into a shared pack whose other chunks are all gone.
    return this.db.query(`UPDATE packs SET state = 'deleting', deleting_at = ?1
      WHERE state = 'valid' AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = packs.id)
        AND created_at < COALESCE((SELECT MIN(started_at) FROM upload_leases WHERE expires_at > ?1), ?1 + 1)`).run(at).changes;
  }

  async markStalePendingPacks(before: number, at: number): Promise<number> {
    return this.db.transaction(() => {
      const oldest = (this.db.query("SELECT MIN(started_at) AS t FROM upload_leases WHERE expires_at > ?").get(at) as { t: number | null }).t;
      const bound = Math.min(before, oldest ?? Number.MAX_SAFE_INTEGER);
      // Nobody reads a pending pack: its bytes may go at once (deleting_at = 0).
      return this.db.query(`UPDATE packs SET state = 'deleting', deleting_at = 0
        WHERE state = 'pending' AND created_at < ? AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = packs.id)`).run(bound).changes;
    }).immediate();
  }

  async packsToDelete(before: number): Promise<PackRecord[]> {
    return this.db.query(`SELECT id, storage_key AS key, size, state FROM packs
      WHERE state = 'deleting' AND deleting_at <= ? ORDER BY id`).all(before) as PackRecord[];
  }

  async forgetDeletedPack(packId: number): Promise<void> {
    this.db.query(`DELETE FROM packs WHERE id = ? AND state = 'deleting'
      AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = packs.id)`).run(packId);
  }

  async compactionCandidates(threshold: number): Promise<CompactionCandidate[]> {
    return this.db.query(`SELECT p.id, p.storage_key AS key, p.size,
        COALESCE((SELECT SUM(c.stored_size) FROM chunks c WHERE c.pack_id = p.id AND c.state = 'valid'), 0) AS liveBytes
      FROM packs p WHERE p.state = 'valid' AND p.size > 0 AND liveBytes > 0 AND liveBytes < p.size * ?
      ORDER BY p.id`).all(threshold) as CompactionCandidate[];
  }

  async packLiveChunks(packId: number): Promise<PackChunk[]> {
    return this.db.query(`SELECT id, chunk_hash AS hash, chunk_size AS size, compression, pack_offset AS offset,
        stored_size AS storedSize FROM chunks WHERE pack_id = ? AND state = 'valid' ORDER BY pack_offset`).all(packId) as PackChunk[];
  }

  async relocateChunks(newPack: { id: number; size: number }, fromPackId: number, moves: ChunkMove[]): Promise<number> {
    return this.db.transaction(() => {
      this.db.query("UPDATE packs SET state = 'valid', size = ? WHERE id = ? AND state = 'pending'").run(newPack.size, newPack.id);
      const move = this.db.query(`UPDATE chunks SET pack_id = ?, pack_offset = ?
        WHERE id = ? AND pack_id = ? AND pack_offset = ? AND state IN ('valid', 'deleting')`);
      let n = 0;
      for (const m of moves) n += move.run(newPack.id, m.toOffset, m.chunkId, fromPackId, m.fromOffset).changes;
      return n;
    }).immediate();
  }

  private pinsOf(cacheId: number): PinRecord[] {
    return (this.db.query(`SELECT name, store_path_hash, store_path, created_by, created_at FROM pins
      WHERE cache_id = ? ORDER BY name`).all(cacheId) as
      { name: string; store_path_hash: string; store_path: string; created_by: string | null; created_at: number }[])
      .map((r) => ({ name: r.name, storePathHash: r.store_path_hash, storePath: r.store_path, createdBy: r.created_by, createdAt: r.created_at }));
  }

  async addPin(cacheId: number, pin: Omit<PinRecord, "createdAt">): Promise<PinRecord | null> {
    const t = now();
    // Only while the cache holds the path (and so exists): the check and the write are one statement.
    const changes = this.db.query(`INSERT INTO pins (cache_id, name, store_path_hash, store_path, created_by, created_at)
      SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM objects WHERE cache_id = ?1 AND store_path_hash = ?3)
      ON CONFLICT (cache_id, name) DO UPDATE SET store_path_hash = excluded.store_path_hash,
        store_path = excluded.store_path, created_by = excluded.created_by, created_at = excluded.created_at`)
      .run(cacheId, pin.name, pin.storePathHash, pin.storePath, pin.createdBy, t).changes;
    return changes > 0 ? { ...pin, createdAt: t } : null;
  }

  async listPins(cacheId: number): Promise<PinRecord[]> {
    return this.pinsOf(cacheId);
  }

  async removePin(cacheId: number, name: string): Promise<boolean> {
    return this.db.query("DELETE FROM pins WHERE cache_id = ? AND name = ?").run(cacheId, name).changes > 0;
  }

  async visibleObjects(): Promise<VisibleObject[]> {
    return this.db.query(`SELECT c.name AS cacheName, o.store_path AS storePath, o.nar_id AS narId
      FROM objects o JOIN caches c ON c.id = o.cache_id JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'
      ORDER BY c.name, o.store_path`).all() as VisibleObject[];
  }

  async markChunksDamaged(chunkIds: number[]): Promise<number> {
    return this.db.transaction(() => {
      let nars = 0;
      const deltas = new dash.Deltas();
      for (const id of chunkIds) {
        this.db.query("UPDATE chunks SET state = 'damaged' WHERE id = ?").run(id);
        const hidden = this.db.query(`UPDATE nars SET state = 'damaged' WHERE state = 'valid'
          AND id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id = ?) RETURNING id`).all(id) as { id: number }[];
        nars += hidden.length;
        // Their paths are hidden: they leave their caches' figures until a push heals the NAR.
        for (const h of hidden) for (const p of this.stmt.narContributions!.all(h.id) as dash.PathContribution[]) deltas.add(p, -1);
      }
      this.applyDeltas(deltas);
      return nars;
    }).immediate();
  }

  // --- dashboard (issue 14)

  readonly engine = "sqlite" as const;

  /**
   * Dashboard answers that read a whole cache (who refers to a path) are
   * kept until the database changes at all, as narToServe's are: a dashboard is read far more
   * often than a cache of 100 000 paths changes, and each of these walks every path of it.
   */
  private dashGeneration = "";
  private readonly dashMemo = new Map<string, unknown>();

  private memo<T>(key: string, compute: () => T): T {
    const generation = `${(this.stmt.totalChanges!.get() as { c: number }).c}:${(this.stmt.dataVersion!.get() as { data_version: number }).data_version}`;
    if (generation !== this.dashGeneration) {
      this.dashMemo.clear();
      this.dashGeneration = generation;
    }
    if (this.dashMemo.has(key)) return this.dashMemo.get(key) as T;
    const value = compute();
    if (this.dashMemo.size >= 256) this.dashMemo.clear();
    this.dashMemo.set(key, value);
    return value;
  }

  // A cache's figures are counters (one row), a page or a search two index ranges: no memo needed.
  async cacheStats(cacheId: number): Promise<CacheStats> {
    return dash.toCacheStats(this.db.query(dash.CACHE_STATS).get(cacheId) as dash.CountersRow | null);
  }

  async allCacheStats(): Promise<Map<number, CacheStats>> {
    const rows = this.db.query(dash.ALL_CACHE_STATS).all() as (dash.CountersRow & { cache_id: number })[];
    return new Map(rows.map((r) => [r.cache_id, dash.toCacheStats(r)]));
  }

  async cacheDailyBytes(cacheId: number, since: number): Promise<DailyBytes[]> {
    return (this.db.query(dash.CACHE_DAILY).all(cacheId, since) as Parameters<typeof dash.toDaily>[0][]).map(dash.toDaily);
  }

  async listObjects(cacheId: number, query: ListObjectsQuery): Promise<ObjectListing[]> {
    const { sql, params } = dash.listObjectsSql(query, cacheId, "sqlite");
    return (this.db.query(sql).all(...(params as (string | number)[])) as Parameters<typeof dash.toListing>[0][]).map(dash.toListing);
  }

  async referrersOf(cacheId: number, basename: string, limit: number): Promise<ObjectListing[]> {
    const params = dash.referrersParams(cacheId, basename, limit) as (string | number)[];
    return this.memo(`refs:${JSON.stringify(params)}`, () =>
      (this.db.query(dash.REFERRERS).all(...params) as Parameters<typeof dash.toListing>[0][]).map(dash.toListing));
  }

  async serverStats(): Promise<ServerStats> {
    return dash.toServerStats(this.db.query(dash.SERVER_STATS).get() as Record<string, number>);
  }

  // --- token registry

  async recordToken(t: Omit<TokenRecord, "revokedAt">): Promise<void> {
    this.db.query("INSERT INTO tokens (id, sub, permissions, expires_at, created_at) VALUES (?, ?, ?, ?, ?)")
      .run(t.id, t.sub, t.permissions, t.expiresAt, t.createdAt);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return this.db.query(`SELECT id, sub, permissions, expires_at AS expiresAt, created_at AS createdAt,
      revoked_at AS revokedAt FROM tokens ORDER BY created_at, id`).all() as TokenRecord[];
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    this.db.query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(at, id);
    return this.db.query("SELECT 1 FROM tokens WHERE id = ?").get(id) !== null;
  }

  async revokeSub(sub: string, at: number): Promise<number> {
    return this.db.transaction(() => {
      this.db.query(`INSERT INTO revoked_subs (sub, revoked_at) VALUES (?, ?)
        ON CONFLICT (sub) DO UPDATE SET revoked_at = MAX(revoked_at, excluded.revoked_at)`).run(sub, at);
      return this.db.query("UPDATE tokens SET revoked_at = ? WHERE sub = ? AND revoked_at IS NULL").run(at, sub).changes;
    }).immediate();
  }

  async revocations(): Promise<RevocationList> {
    const ids = this.db.query("SELECT id FROM tokens WHERE revoked_at IS NOT NULL").all() as { id: string }[];
    const subs = this.db.query("SELECT sub, revoked_at FROM revoked_subs").all() as { sub: string; revoked_at: number }[];
    return { ids: new Set(ids.map((r) => r.id)), subs: new Map(subs.map((r) => [r.sub, r.revoked_at])) };
  }
}
