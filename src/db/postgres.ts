import { SQL } from "bun";
import { PG_MIGRATIONS, MIGRATIONS } from "./migrations.ts";
import { refHashes } from "./object-refs.ts";
import { chunkShownIn } from "./chunk-shown.ts";
import { CacheChanged, pushRecord, StagingGone, type AuditEntry, type NewStagedNar, type PushRecord, type PushRow, type StagedNarRecord, type StagedParts } from "./types.ts";
import { OverQuota, ownPackIds, STAGING_SQL, toStaged, type StagedRow } from "./staging-rows.ts";
import * as dash from "./dashboard-sql.ts";
import type {
  CacheIdentity, CachePatch, CacheStats, DailyBytes, ListObjectsQuery, ObjectListing, ServerStats, CacheRecord, ChunkLocation, ChunkMove, CompactionCandidate, Compression, GcObject, IndexedChunk,
  MetaStore, NarRecord, NewCache, ObjectView, PackChunk, PackRecord, PinRecord, RevocationList, ServedNar, TokenRecord, UploadCommit, VisibleObject,
} from "./types.ts";

const now = (): number => Math.floor(Date.now() / 1000);

/** How long a cache record found by getCache is reused: the bound on a change made by another replica. */
export const PG_CACHE_RECORD_MS = 1000;
const CACHE_RECORDS_MAX = 1024;

/*
 * Advisory lock keys (one 64-bit space per database). Concurrency on PostgreSQL is reasoned about
 * with these instead of SQLite's one writer at a time:
 * - MIGRATE: replicas starting together run the migrations once, the others wait and see them done.
 * - COLLECT: one collector across all replicas (session lock, held on a reserved connection for the
 *   whole run and dropped by the server if the process dies).
 * - GC_WRITE: the collector's global steps (marking chunks, dropping NARs and packs, moving chunks)
 *   take it exclusively; every upload commit takes it shared, so a commit and such a step never
 *   interleave: the step sees a commit whole or not at all, as with SQLite's write lock.
 * - CACHE_BASE + cache id: expiring a cache's paths takes it exclusively, commits and pins into that
 *   cache take it shared, so a referrer or a pin written meanwhile is seen by the decision.
 * - STAGING + hash of an owner (two-key space): that owner's native stagings, one at a time, so
 *   its staging quota holds across replicas.
 */
const STAGING_LOCK_KEY = -7;
const MIGRATE_KEY = 0x6761_7272_6d00;
const COLLECT_KEY = 0x6761_7272_6763;
const GC_WRITE_KEY = 0x6761_7272_7772;
const CACHE_KEY_BASE = 0x6761_7200_0000_0;

type Exec = SQL;
type Row = Record<string, unknown>;

/** Columns PostgreSQL returns as strings (BIGINT) that the domain types want as numbers. */
const NUMERIC = new Set([
  "id", "cache_id", "chunk_id", "pack_id", "nar_id", "size", "chunk_size", "stored_size", "pack_size", "pack_offset",
  "offset", "storedSize", "nar_size", "num_chunks", "file_size", "created_at", "last_accessed_at", "retention_period",
  "quota_bytes", "priority", "deleting_at", "expires_at", "started_at", "mark_seq", "n", "b", "t", "liveBytes",
  "narId", "seq", "createdAt", "at", "lease_id",
]);

function numbers<T>(rows: Row[]): T[] {
  for (const r of rows) {
    for (const k in r) {
      const v = r[k];
      if (typeof v === "string" && NUMERIC.has(k)) r[k] = Number(v);
    }
  }
  return rows as T[];
}

interface CacheRow {
  id: number; name: string; is_public: number; store_dir: string; priority: number;
  upstream_cache_key_names: string; signing_key: string; retention_period: number | null;
  quota_bytes: number | null; created_at: number;
}

function toCache(r: CacheRow): CacheRecord {
  return {
    id: r.id, name: r.name, isPublic: r.is_public === 1, storeDir: r.store_dir,
    priority: r.priority, upstreamCacheKeyNames: JSON.parse(r.upstream_cache_key_names),
    signingKey: r.signing_key, retentionPeriod: r.retention_period, quotaBytes: r.quota_bytes ?? null,
    createdAt: r.created_at,
  };
}

const OBJECT_SELECT = `
  SELECT o.cache_id, o.store_path_hash, o.store_path, o.refs, o.system, o.deriver, o.ca, o.sigs,
         o.server_sig, o.server_sig_key, o.nar_id, n.nar_hash, n.nar_size, n.file_size, n.compression
  FROM objects o JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'`;

// The present, servable ones of $2 (text[]) in cache $1: one index probe per hash (see missingPaths).
// A path whose NAR fsck found damaged is hidden: missing to pushers too, so a re-push heals it.
const PRESENT_PATHS = `SELECT p.id, p.h, p.at FROM unnest($2::text[]) AS q(h) CROSS JOIN LATERAL (
    SELECT o.id, o.store_path_hash AS h, o.last_accessed_at AS at FROM objects o
    WHERE o.cache_id = $1 AND o.store_path_hash = q.h
      AND EXISTS (SELECT 1 FROM nars n WHERE n.id = o.nar_id AND n.state = 'valid') LIMIT 1) p`;

const CHUNK_COLUMNS = `c.id AS chunk_id, c.chunk_hash, c.chunk_size, c.compression, c.pack_id,
  p.storage_key, p.size AS pack_size, c.pack_offset, c.stored_size`;
const CHUNK_JOINS = "JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id";
/** The shared staging statements with numbered placeholders, numbered once. */
const PG_STAGING = Object.fromEntries(Object.entries(STAGING_SQL).map(([k, sql]) => [k, dash.pgPlaceholders(sql)])) as
  Record<keyof typeof STAGING_SQL, string>;

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

interface ChunkRef { id: number; chunk_hash: string; state: string; stored_size: number; compression: Compression }

function narSummary(chunks: ChunkRef[]): { fileSize: number; compression: Compression | "mixed" } {
  let fileSize = 0;
  let compression: Compression | "mixed" | null = null;
  for (const ch of chunks) {
    fileSize += ch.stored_size;
    compression = compression === null || compression === ch.compression ? ch.compression : "mixed";
  }
  return { fileSize, compression: compression ?? "none" };
}

/** Counter rows per cache (migration 9): commits on different connections add to different rows. */
const COUNTER_SHARDS = 64;

/** What a path adds to its cache's figures, as selected by CONTRIBUTION (BIGINTs come back as strings). */
interface ContributionRow { cache_id: number; created_at: number; nar_size: number; file_size: number }
const CONTRIBUTION = "o.cache_id, o.created_at, n.nar_size, n.file_size";
const contribution = (r: ContributionRow): dash.PathContribution => ({
  cacheId: Number(r.cache_id), createdAt: Number(r.created_at), narSize: Number(r.nar_size), fileSize: Number(r.file_size),
});

/**
 * What one process's stores on one pool share: NAR download answers served lately, and a count
 * of the writes made through them that can change such an answer (SERVED_CHANGES). An answer is
 * reused while no such write of this process has begun or ended since it was read, and for at
 * most PG_CACHE_RECORD_MS: a change made by another replica shows here within that time, as
 * cache records do. Uploads, access times and signatures only add or leave answers as they are,
 * so a push-heavy replica keeps its answers; a commit that heals a chunk whose bytes were lost
 * drops them (see commitUpload).
 */
interface Shared {
  writes: number;
  served: Map<string, Kept<ServedNar>>;
  objects: Map<string, Kept<ObjectView>>;
}
interface Kept<T> { value: T; at: number; writes: number }

/** A kept object is handed out as a copy: callers may change what they get. */
const copyObject = (o: ObjectView): ObjectView => ({ ...o, references: [...o.references], sigs: [...o.sigs] });
const SERVED_MAX = 4096;

/** Thrown inside simulate's transaction to roll it back with the answer. */
class Rollback<T> {
  constructor(readonly value: T) {}
}

/** A PostgreSQL URL that cannot be used, or a server that cannot be reached: one line for the CLI. */
export class DatabaseUnavailable extends Error {}

/**
 * The networked metadata store, on Bun's built-in PostgreSQL client. Several replicas share one
 * database; every decision and its write happen in one statement or one transaction, under row
 * locks, unique constraints or the advisory locks above.
 */
export class PostgresMetaStore implements MetaStore {
  private constructor(private readonly root: SQL, private readonly q: Exec, private readonly inTx: boolean,
    private readonly shared: Shared = { writes: 0, served: new Map(), objects: new Map() }) {}

  static async open(url: string, poolSize = 10): Promise<PostgresMetaStore> {
    const sql = new SQL({ url, max: poolSize, connectionTimeout: 10, idleTimeout: 60 });
    try {
      await sql`SELECT 1`;
    } catch (err) {
      await sql.close().catch(() => {});
      throw new DatabaseUnavailable(`database ${redact(url)}: ${(err as Error).message}`);
    }
    const store = new PostgresMetaStore(sql, sql, false);
    await store.migrate();
    return store;
  }

  /** Migrations run once: the first replica takes the lock and applies them; the others then find them applied. */
  private async migrate(): Promise<void> {
    if (PG_MIGRATIONS.length !== MIGRATIONS.length) {
      throw new Error(`internal: ${MIGRATIONS.length} SQLite migrations but ${PG_MIGRATIONS.length} for PostgreSQL`);
    }
    await this.root.begin(async (tx) => {
      await tx.unsafe(`SELECT pg_advisory_xact_lock(${MIGRATE_KEY})`);
      await tx.unsafe("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
      const rows = await tx.unsafe("SELECT version FROM schema_version");
      let version = (rows[0] as { version: number } | undefined)?.version ?? 0;
      if (rows.length === 0) await tx.unsafe("INSERT INTO schema_version (version) VALUES (0)");
      if (version > PG_MIGRATIONS.length) throw new Error(`database schema version ${version} is newer than this garret (${PG_MIGRATIONS.length})`);
      for (; version < PG_MIGRATIONS.length; version++) {
        await tx.unsafe(PG_MIGRATIONS[version]!);
        await tx.unsafe("UPDATE schema_version SET version = $1", [version + 1]);
      }
    });
  }

  private async all<T>(text: string, params: unknown[] = []): Promise<T[]> {
    return numbers<T>(await this.q.unsafe(text, params) as Row[]);
  }

  private async one<T>(text: string, params: unknown[] = []): Promise<T | null> {
    return (await this.all<T>(text, params))[0] ?? null;
  }

  private async run(text: string, params: unknown[] = []): Promise<number> {
    const r = await this.q.unsafe(text, params) as unknown as { count: number };
    return r.count;
  }

  /** A transaction (a savepoint when already inside one) with this store's methods bound to it. */
  private async tx<T>(fn: (s: PostgresMetaStore) => Promise<T>): Promise<T> {
    if (this.inTx) {
      return (await (this.q as unknown as { savepoint<R>(f: (sp: SQL) => Promise<R>): Promise<R> })
        .savepoint((sp) => fn(new PostgresMetaStore(this.root, sp, true, this.shared))));
    }
    return await this.root.begin((t) => fn(new PostgresMetaStore(this.root, t as unknown as SQL, true, this.shared))) as T;
  }

  /** Counts a write that may change a served answer (see Shared and SERVED_CHANGES). */
  static changingServed(store: PostgresMetaStore, delta: number): void {
    store.shared.writes += delta;
  }

  async ping(): Promise<void> {
    await this.q.unsafe("SELECT 1", []);
  }

  async pushLog(cacheId: number, filter: { sub?: string; tokenId?: string }): Promise<PushRecord[]> {
    const rows = await this.all<PushRow>(`SELECT store_path, store_path_hash, created_by, pushed_by_token, pushed_from, created_at
      FROM objects WHERE cache_id = $1 AND ($2::text IS NULL OR created_by = $2) AND ($3::text IS NULL OR pushed_by_token = $3)
      ORDER BY created_at DESC, id DESC`, [cacheId, filter.sub ?? null, filter.tokenId ?? null]);
    return rows.map(pushRecord);
  }

  async recordAudit(e: Omit<AuditEntry, "id" | "at">): Promise<void> {
    await this.run("INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
      [Math.floor(Date.now() / 1000), e.actor, e.action, e.target, e.detail]);
  }

  async auditLog(): Promise<AuditEntry[]> {
    // BIGINT columns come back as strings
    return (await this.all<AuditEntry>("SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id"))
      .map((e) => ({ ...e, id: Number(e.id), at: Number(e.at) }));
  }

  close(): void {
    void this.root.close();
  }

  /** Awaitable close, for tests and short commands that must not leave connections behind. */
  async end(): Promise<void> {
    await this.root.close();
  }

  // --- caches

  private readonly cacheRecords = new Map<string, { record: CacheRecord | null; at: number }>();

  /**
   * Cache records are reused for PG_CACHE_RECORD_MS (misses too, so a private cache costs what a
   * missing name costs). A change on another replica shows here within that time.
   */
  async getCache(name: string): Promise<CacheRecord | null> {
    const at = performance.now();
    const kept = this.cacheRecords.get(name);
    if (kept && at - kept.at < PG_CACHE_RECORD_MS) return kept.record;
    const row = await this.one<CacheRow>("SELECT * FROM caches WHERE name = $1", [name]);
    const record = row ? toCache(row) : null;
    if (record) {
      Object.freeze(record.upstreamCacheKeyNames);
      Object.freeze(record);
    }
    if (this.cacheRecords.size >= CACHE_RECORDS_MAX) this.cacheRecords.clear();
    this.cacheRecords.set(name, { record, at });
    return record;
  }

  async createCache(c: NewCache): Promise<CacheRecord> {
    await this.run(`INSERT INTO caches (name, is_public, store_dir, priority, upstream_cache_key_names,
      signing_key, retention_period, quota_bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [c.name, c.isPublic ? 1 : 0, c.storeDir, c.priority, JSON.stringify(c.upstreamCacheKeyNames), c.signingKey,
      c.retentionPeriod, c.quotaBytes ?? null, now()]);
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
      const v = patch[key];
      if (v === undefined) continue;
      values.push(key === "isPublic" ? (v ? 1 : 0) : key === "upstreamCacheKeyNames" ? JSON.stringify(v) : v as string | number | null);
      sets.push(`${column} = $${values.length}`);
    }
    const n = values.length;
    const changed = await this.run(`UPDATE caches SET ${sets.length > 0 ? sets.join(", ") : "id = id"}
      WHERE id = $${n + 1} AND name = $${n + 2} AND created_at = $${n + 3}`, [...values, cache.id, cache.name, cache.createdAt]);
    this.cacheRecords.delete(cache.name);
    return changed > 0 ? this.getCache(cache.name) : null;
  }

  async deleteCache(cache: CacheIdentity): Promise<boolean> {
    this.cacheRecords.delete(cache.name);
    return await this.run("DELETE FROM caches WHERE id = $1 AND name = $2 AND created_at = $3",
      [cache.id, cache.name, cache.createdAt]) > 0;
  }

  async listCaches(): Promise<CacheRecord[]> {
    return (await this.all<CacheRow>("SELECT * FROM caches ORDER BY id")).map(toCache);
  }

  // --- serving

  /**
   * One statement for any number of hashes (one array parameter). Each hash is looked up through
   * the unique index by a LATERAL … LIMIT 1, a plan that does not depend on statistics or on
   * PostgreSQL's generic plans (with `= ANY($2)` the generic plan was a sequential scan).
   * With touchAt, present rows last accessed before staleBefore are rewritten; if there are any,
   * the answer is read again by the statement that touches them, under the cache's shared lock:
   * an expiry deciding on this cache (exclusive lock) runs wholly before it (the path is answered
   * missing) or after it (and sees the new access time). Rows accessed since staleBefore are left
   * alone: they are fresher than any retention cutoff (see types.ts).
   */
  async missingPaths(cacheId: number, hashes: string[], touchAt?: number, staleBefore = Number.MAX_SAFE_INTEGER): Promise<string[]> {
    if (hashes.length === 0) return [];
    let present = await this.all<{ h: string; at: number }>(PRESENT_PATHS, [cacheId, hashes]);
    if (touchAt !== undefined && present.some((r) => r.at < staleBefore)) {
      present = await this.tx(async (s) => {
        await s.run(`SELECT pg_advisory_xact_lock_shared(${CACHE_KEY_BASE} + $1::bigint)`, [cacheId]);
        return await s.all<{ h: string; at: number }>(`WITH present AS MATERIALIZED (${PRESENT_PATHS}),
            touched AS (UPDATE objects o SET last_accessed_at = $3 FROM present p WHERE o.id = p.id AND p.at < $4)
          SELECT h, at FROM present`, [cacheId, hashes, touchAt, staleBefore]);
      });
    }
    const have = new Set(present.map((r) => r.h));
    return hashes.filter((h) => !have.has(h));
  }

  /**
   * Found objects are kept like NAR answers (see Shared): for at most PG_CACHE_RECORD_MS, dropped
   * by this process's deleting writes, and per path by its commits and signatures here. Misses
   * are not kept, so a path pushed on another replica is found at once.
   */
  async getObject(cacheId: number, storePathHash: string): Promise<ObjectView | null> {
    return await this.keptOrRead(this.shared.objects, `${cacheId}:${storePathHash}`,
      () => this.readObject(cacheId, storePathHash), copyObject, copyObject);
  }

  /**
   * The answer kept under `key` while no write that can change it has begun or ended since it was
   * read here and it is younger than PG_CACHE_RECORD_MS (see Shared); else read, and kept when found
   * and no such write ran meanwhile. Reads inside a transaction are neither kept nor reused.
   * `keep` makes what is kept, `hand` what a later caller gets of it.
   */
  private async keptOrRead<T>(kept: Map<string, Kept<T>>, key: string, read: () => Promise<T | null>,
    keep: (v: T) => T, hand: (v: T) => T = (v) => v): Promise<T | null> {
    const at = performance.now();
    const k = kept.get(key);
    if (k && k.writes === this.shared.writes && at - k.at < PG_CACHE_RECORD_MS) return hand(k.value);
    const writes = this.shared.writes;
    const value = await read();
    if (value && writes === this.shared.writes && !this.inTx) {
      if (kept.size >= SERVED_MAX) kept.clear();
      kept.set(key, { value: keep(value), at, writes });
    }
    return value;
  }

  /** Drops the kept object of one path (a commit or a signature of it in this process). */
  static forgetObject(store: PostgresMetaStore, cacheId: number, storePathHash: string): void {
    store.shared.objects.delete(`${cacheId}:${storePathHash}`);
  }

  private async readObject(cacheId: number, storePathHash: string): Promise<ObjectView | null> {
    const r = await this.one<{
      cache_id: number; store_path_hash: string; store_path: string; refs: string; system: string | null;
      deriver: string | null; ca: string | null; sigs: string; server_sig: string | null; server_sig_key: string | null;
      nar_id: number; nar_hash: string; nar_size: number; file_size: number; compression: Compression | "mixed";
    }>(`${OBJECT_SELECT} WHERE o.cache_id = $1 AND o.store_path_hash = $2`, [cacheId, storePathHash]);
    return r && {
      cacheId: r.cache_id, storePathHash: r.store_path_hash, storePath: r.store_path,
      references: JSON.parse(r.refs), system: r.system, deriver: r.deriver, ca: r.ca,
      sigs: JSON.parse(r.sigs), serverSig: r.server_sig, serverSigKey: r.server_sig_key,
      narId: r.nar_id, narHash: r.nar_hash, narSize: r.nar_size, fileSize: r.file_size, compression: r.compression,
    };
  }

  /**
   * Kept between this process's writes for at most PG_CACHE_RECORD_MS (see Shared): a NAR deleted,
   * healed or marked damaged on another replica is served as before for at most that long (its
   * chunks' bytes outlive that: packs are deleted only a grace period after their last chunk).
   * Misses are not kept, so a NAR pushed on another replica is served as soon as it is committed.
   */
  async narToServe(cacheId: number, narHash: string): Promise<ServedNar | null> {
    return await this.keptOrRead(this.shared.served, `${cacheId}:${narHash}`, () => this.readNarToServe(cacheId, narHash), (nar) => Object.freeze(nar));
  }

  async narInCaches(narHash: string, cacheIds: number[]): Promise<boolean> {
    return (await this.one(`SELECT 1 FROM nars n JOIN objects o ON o.nar_id = n.id
      WHERE n.nar_hash = $1 AND n.state = 'valid' AND o.cache_id + 0 = ANY($2::bigint[]) LIMIT 1`, [narHash, cacheIds])) !== null;
  }

  // `cache_id + 0` here and in narInCaches: through the NAR's paths, never a cache's (see chunk-shown.ts).
  async narSharing(narId: number, cacheIds: number[]): Promise<{ fileSize: number; unsharedBytes: number }> {
    const r = (await this.one<{ file_size: number | null; unshared: number }>(`SELECT (SELECT file_size FROM nars WHERE id = $1) AS file_size,
        coalesce(sum(c.chunk_size), 0) AS unshared
      FROM chunks c WHERE c.id IN (SELECT chunk_id FROM nar_chunks WHERE nar_id = $1)
        AND NOT EXISTS (SELECT 1 FROM nar_chunks nc JOIN objects o ON o.nar_id = nc.nar_id
          WHERE nc.chunk_id = c.id AND nc.nar_id <> $1 AND o.cache_id + 0 = ANY($2::bigint[]))`, [narId, cacheIds]))!;
    return { fileSize: Number(r.file_size ?? 0), unsharedBytes: Number(r.unshared) };
  }

  private async readNarToServe(cacheId: number, narHash: string): Promise<ServedNar | null> {
    const rows = await this.all<ChunkRow & {
      store_path_hash: string; nar_id: number; nar_size: number; file_size: number; nar_compression: Compression | "mixed";
    }>(`SELECT o.store_path_hash, n.id AS nar_id, n.nar_size, n.file_size, n.compression AS nar_compression, ${CHUNK_COLUMNS}
      FROM nars n
      JOIN objects o ON o.id = (SELECT id FROM objects WHERE nar_id = n.id AND cache_id = $1 LIMIT 1)
      JOIN nar_chunks nc ON nc.nar_id = n.id ${CHUNK_JOINS}
      WHERE n.nar_hash = $2 AND n.state = 'valid' ORDER BY nc.seq`, [cacheId, narHash]);
    const first = rows[0];
    if (!first) return null;
    return {
      storePathHash: first.store_path_hash, narId: first.nar_id, narHash, narSize: first.nar_size,
      fileSize: first.file_size, compression: first.nar_compression, chunks: rows.map(toChunkLocation),
    };
  }

  async updateServerSig(cacheId: number, storePathHash: string, sig: string, key: string): Promise<void> {
    await this.run("UPDATE objects SET server_sig = $1, server_sig_key = $2 WHERE cache_id = $3 AND store_path_hash = $4",
      [sig, key, cacheId, storePathHash]);
  }

  async setExtraSigs(cacheId: number, storePathHash: string, seen: { narId: number; sigs: string[] }, sigs: string[]): Promise<boolean> {
    return (await this.run(`UPDATE objects SET sigs = $1 WHERE cache_id = $2 AND store_path_hash = $3 AND nar_id = $4 AND sigs = $5`,
      [JSON.stringify(sigs), cacheId, storePathHash, seen.narId, JSON.stringify(seen.sigs)])) > 0;
  }

  async touchObjects(cacheId: number, hashes: string[], at: number): Promise<void> {
    if (hashes.length === 0) return;
    await this.run("UPDATE objects SET last_accessed_at = $1 WHERE cache_id = $2 AND store_path_hash = ANY($3::text[])",
      [at, cacheId, hashes]);
  }

  // --- ingest

  async findChunks(hashes: string[], shownIn?: number[]): Promise<Map<string, IndexedChunk>> {
    const found = new Map<string, IndexedChunk>();
    if (hashes.length === 0) return found;
    const shown = shownIn ? `, ${chunkShownIn("= ANY($2::bigint[])")} AS shown` : "";
    const rows = await this.all<IndexedChunk & { hash: string }>(`SELECT c.chunk_hash AS hash, c.id, c.chunk_size AS size,
        p.storage_key AS "packKey", c.pack_offset AS "offset", c.stored_size AS "storedSize", c.compression${shown}
      FROM chunks c JOIN packs p ON p.id = c.pack_id WHERE c.chunk_hash = ANY($1::text[]) AND c.state = 'valid'`,
    shownIn ? [hashes, shownIn] : [hashes]);
    for (const { hash, ...chunk } of rows) found.set(hash, chunk);
    return found;
  }

  async findNar(narHash: string): Promise<NarRecord | null> {
    const r = await this.one<{ id: number; nar_hash: string; nar_size: number; num_chunks: number; state: string }>(
      "SELECT id, nar_hash, nar_size, num_chunks, state FROM nars WHERE nar_hash = $1", [narHash]);
    return r && { id: r.id, narHash: r.nar_hash, narSize: r.nar_size, numChunks: r.num_chunks, state: r.state };
  }

  async narChunks(narId: number): Promise<ChunkLocation[]> {
    return (await this.all<ChunkRow>(`SELECT ${CHUNK_COLUMNS} FROM nar_chunks nc ${CHUNK_JOINS} WHERE nc.nar_id = $1 ORDER BY nc.seq`, [narId]))
      .map(toChunkLocation);
  }

  async createPendingPack(storageKey: string): Promise<number> {
    return (await this.one<{ id: number }>("INSERT INTO packs (storage_key, size, state, created_at) VALUES ($1, 0, 'pending', $2) RETURNING id",
      [storageKey, now()]))!.id;
  }

  async forgetPack(packId: number): Promise<void> {
    await this.run("DELETE FROM packs WHERE id = $1 AND state = 'pending'", [packId]);
  }

  /**
   * One transaction of a bounded number of statements whatever the NAR's size: chunks, their
   * lookups and the NAR's chunk list go as arrays. Two uploads of the same NAR meet on the unique
   * keys (the second waits for the first and then reuses what it wrote).
   */
  async commitUpload(c: UploadCommit): Promise<{ narId: number; narExisted: boolean }> {
    // A commit that heals chunks moves where their bytes are: like the writes in SERVED_CHANGES, it
    // drops the kept answers as it begins and ends, so this process never serves the lost copy again.
    const moves = c.newChunks.some((ch) => ch.heals);
    if (moves) PostgresMetaStore.changingServed(this, 1);
    try {
      return await this.tx((s) => s.commitIn(c));
    } finally {
      if (moves) PostgresMetaStore.changingServed(this, 1);
    }
  }

  private async commitIn(c: UploadCommit): Promise<{ narId: number; narExisted: boolean }> {
    const t = now();
    // The path's own lock (two-key space, apart from the keys above): a concurrent push of the same
    // path waits, so the path's old figures read below are the ones this upsert replaces.
    await this.run(`SELECT pg_advisory_xact_lock_shared(${GC_WRITE_KEY}), pg_advisory_xact_lock_shared(${CACHE_KEY_BASE} + $1::bigint),
      pg_advisory_xact_lock($1::int, hashtext($2))`, [c.cache.id, c.object.storePathHash]);
    const deltas = new dash.Deltas();
    // FOR SHARE: a deleteCache waits for this commit (and then takes its object with the cache).
    if (!(await this.one("SELECT 1 FROM caches WHERE id = $1 AND name = $2 AND created_at = $3 FOR SHARE",
      [c.cache.id, c.cache.name, c.cache.createdAt]))) throw new CacheChanged(c.cache);
    if (c.stagedId !== undefined) {
      // The staged NAR this publishes is still staged (not expired and collected, nor replaced), and durable.
      const staged = await this.one<{ lease_id: number }>(PG_STAGING.consume, [c.stagedId]);
      if (!staged) throw new StagingGone(c.stagedId);
      await this.run(PG_STAGING.dropLease, [staged.lease_id]);
    }
    if (c.packs.length > 0) {
      const sealed = new Set((await this.all<{ id: number }>(`UPDATE packs SET state = 'valid', size = v.size
        FROM unnest($1::bigint[], $2::bigint[]) AS v(id, size) WHERE packs.id = v.id AND packs.state = 'pending' RETURNING packs.id`,
      [c.packs.map((p) => p.id), c.packs.map((p) => p.size)])).map((r) => r.id));
      const rest = c.packs.filter((p) => !sealed.has(p.id));
      if (rest.length > 0) {
        // A shared pack another upload sealed first is valid; anything else means a collector took it.
        const valid = new Set((await this.all<{ id: number }>("SELECT id FROM packs WHERE id = ANY($1::bigint[]) AND state = 'valid'",
          [rest.map((p) => p.id)])).map((r) => r.id));
        for (const p of rest) if (!p.shared || !valid.has(p.id)) throw new Error(`internal: pack ${p.id} is no longer pending`);
      }
    }
    // New chunks, in hash order (two commits inserting the same chunks lock them in the same order).
    const byHash = new Map(c.newChunks.map((ch) => [ch.hash, ch]));
    const fresh = [...byHash.values()].sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
    for (const heals of [false, true]) {
      const part = fresh.filter((ch) => ch.heals === heals);
      if (part.length === 0) continue;
      // A concurrent upload may have indexed the same chunk: keep its copy, unless ours heals an
      // entry whose bytes were lost or that the collector was about to delete.
      await this.run(`INSERT INTO chunks (chunk_hash, chunk_size, compression, pack_id, pack_offset, stored_size, state, created_at)
        SELECT h, sz, cmp, pk, off, st, 'valid', $7 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
          AS v(h, sz, cmp, pk, off, st)
        ON CONFLICT (chunk_hash) DO UPDATE SET compression = excluded.compression, pack_id = excluded.pack_id,
          pack_offset = excluded.pack_offset, stored_size = excluded.stored_size, state = 'valid', mark_seq = NULL
        ${heals ? "" : "WHERE chunks.state != 'valid'"}`,
      [part.map((x) => x.hash), part.map((x) => x.size), part.map((x) => x.compression), part.map((x) => x.packId),
        part.map((x) => x.offset), part.map((x) => x.storedSize), t]);
    }
    // Every chunk the NAR lists must be indexed with its bytes in place. One the collector marked
    // 'deleting' since the upload looked it up still has its bytes (see src/gc/collect.ts): take it
    // back here, in the transaction that references it. GC_WRITE keeps the marking out meanwhile.
    const distinct = [...new Set(c.chunkHashes)];
    await this.run("UPDATE chunks SET state = 'valid', mark_seq = NULL WHERE chunk_hash = ANY($1::text[]) AND state = 'deleting'", [distinct]);
    const refs = new Map((await this.all<ChunkRef>(`SELECT id, chunk_hash, state, stored_size, compression FROM chunks
      WHERE chunk_hash = ANY($1::text[])`, [distinct])).map((r) => [r.chunk_hash, r]));
    for (const hash of distinct) {
      const r = refs.get(hash);
      if (!r) throw new Error(`internal: chunk ${hash} vanished before commit`);
      if (r.state !== "valid") throw new Error(`chunk ${hash} was found damaged during this upload; push again`);
    }
    const list = c.chunkHashes.map((h) => refs.get(h)!);
    const { fileSize, compression } = narSummary(list);
    const inserted = await this.one<{ id: number }>(`INSERT INTO nars (nar_hash, nar_size, num_chunks, file_size, compression, state, created_at)
      VALUES ($1, $2, $3, $4, $5, 'valid', $6) ON CONFLICT (nar_hash) DO NOTHING RETURNING id`,
    [c.narHash, c.narSize, list.length, fileSize, compression, t]);
    let narId: number;
    let narExisted = false;
    // The NAR's figures, for this path's contribution to the cache's (see dashboard-sql.ts).
    let mine = { narSize: c.narSize, fileSize };
    if (inserted) {
      narId = inserted.id;
      await this.insertNarChunks(narId, list);
    } else {
      const existing = (await this.one<{ id: number; state: string; nar_size: number; file_size: number }>(
        "SELECT id, state, nar_size, file_size FROM nars WHERE nar_hash = $1 FOR UPDATE", [c.narHash]))!;
      narId = existing.id;
      if (existing.state === "valid") {
        narExisted = true;
        mine = { narSize: existing.nar_size, fileSize: existing.file_size };
      } else {
        // A damaged (hidden) NAR: this upload proved possession of every byte again; heal it.
        await this.run("DELETE FROM nar_chunks WHERE nar_id = $1", [narId]);
        await this.run("UPDATE nars SET state = 'valid', num_chunks = $1, file_size = $2, compression = $3 WHERE id = $4",
          [list.length, fileSize, compression, narId]);
        await this.insertNarChunks(narId, list);
        // Every path using it, in any cache, counts again (the NAR's row lock keeps its users still).
        for (const p of await this.narContributions([narId])) deltas.add(p, 1);
      }
    }
    const o = c.object;
    // The path's old figures, read by the upsert's statement before it writes (one snapshot), FOR
    // SHARE of the old NAR: a heal or a hide of it (which lock it for update) runs wholly before or after.
    const old = await this.one<ContributionRow & { state: string }>(`WITH old AS (SELECT ${CONTRIBUTION}, n.state
        FROM objects o JOIN nars n ON n.id = o.nar_id WHERE o.cache_id = $1 AND o.store_path_hash = $2 FOR SHARE OF n),
      up AS (INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, system,
        deriver, ca, sigs, server_sig, server_sig_key, created_by, created_at, last_accessed_at,
        pushed_by_token, pushed_from)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15)
      ON CONFLICT (cache_id, store_path_hash) DO UPDATE SET store_path = excluded.store_path,
        nar_id = excluded.nar_id, refs = excluded.refs, system = excluded.system,
        deriver = excluded.deriver, ca = excluded.ca, sigs = excluded.sigs,
        server_sig = excluded.server_sig, server_sig_key = excluded.server_sig_key,
        created_by = excluded.created_by, created_at = excluded.created_at,
        last_accessed_at = excluded.last_accessed_at, pushed_by_token = excluded.pushed_by_token,
        pushed_from = excluded.pushed_from
      RETURNING id),
      -- The same statement, no round trip more: a path pushed again loses the references it no
      -- longer has (all sub-statements see one snapshot, so the kept rows are left, not re-added).
      gone AS (DELETE FROM object_refs r USING up WHERE r.object_id = up.id AND r.ref_hash <> ALL($16::text[])),
      refs AS (INSERT INTO object_refs (cache_id, ref_hash, object_id) SELECT $1, h, up.id FROM up, unnest($16::text[]) AS h
        ON CONFLICT DO NOTHING)
      SELECT * FROM old`,
    [c.cache.id, o.storePathHash, o.storePath, narId, JSON.stringify(o.references), o.system, o.deriver, o.ca,
      JSON.stringify(o.sigs), o.serverSig, o.serverSigKey, o.createdBy, t, o.pushedByToken ?? null, o.pushedFrom ?? null,
      refHashes(o.storePathHash, o.references)]);
    if (old && old.state === "valid") deltas.add(contribution(old), -1);
    // The new NAR is this transaction's (inserted, or locked for update above): valid until it commits.
    deltas.add({ cacheId: c.cache.id, createdAt: t, ...mine }, 1);
    deltas.pushed(c.cache.id, t);
    await this.applyDeltas(deltas);
    return { narId, narExisted };
  }

  /** The figures of every path using these NARs (see dashboard-sql.ts). */
  private async narContributions(narIds: number[]): Promise<dash.PathContribution[]> {
    return (await this.all<ContributionRow>(`SELECT ${CONTRIBUTION} FROM objects o JOIN nars n ON n.id = o.nar_id
      WHERE o.nar_id = ANY($1::bigint[])`, [narIds])).map(contribution);
  }

  /**
   * In the transaction that made them: n = n + delta under the counter rows' locks, so concurrent
   * writers add up exactly. Rows are taken in key order (Deltas sorts them) by every writer.
   */
  private async applyDeltas(d: dash.Deltas): Promise<void> {
    const c = d.counters();
    const x = d.daily();
    if (c.length === 0 && x.length === 0) return;
    // The shard of this connection's backend: concurrent commits on other connections never wait
    // for this one's row locks (held until it has committed, WAL flush included).
    await this.run(`WITH c AS (INSERT INTO cache_counters (cache_id, shard, paths, nar_bytes, stored_bytes, last_push_at)
        SELECT id, pg_backend_pid() % ${COUNTER_SHARDS}, p, nb, sb, NULLIF(lp, 0)
        FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS v(id, p, nb, sb, lp)
        ${dash.BUMP_COUNTERS_SET})
      INSERT INTO cache_daily (cache_id, day, shard, paths, nar_bytes, stored_bytes)
        SELECT id, d, pg_backend_pid() % ${COUNTER_SHARDS}, p, nb, sb
        FROM unnest($6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[]) AS v(id, d, p, nb, sb)
        ${dash.BUMP_DAILY_SET}`,
    [c.map((r) => r.cacheId), c.map((r) => r.paths), c.map((r) => r.narBytes), c.map((r) => r.storedBytes), c.map((r) => r.lastPushAt ?? 0),
      x.map((r) => r.cacheId), x.map((r) => r.day), x.map((r) => r.paths), x.map((r) => r.narBytes), x.map((r) => r.storedBytes)]);
  }

  private async insertNarChunks(narId: number, list: ChunkRef[]): Promise<void> {
    await this.run(`INSERT INTO nar_chunks (nar_id, seq, chunk_id)
      SELECT $1, s - 1, id FROM unnest($2::bigint[]) WITH ORDINALITY AS v(id, s)`, [narId, list.map((r) => r.id)]);
  }

  // --- garbage collection

  async acquireUploadLease(at: number, ttl: number): Promise<number> {
    return (await this.one<{ id: number }>("INSERT INTO upload_leases (started_at, expires_at) VALUES ($1, $2) RETURNING id", [at, at + ttl]))!.id;
  }

  async renewUploadLease(id: number, at: number, ttl: number): Promise<void> {
    await this.run("UPDATE upload_leases SET expires_at = $1 WHERE id = $2", [at + ttl, id]);
  }

  async releaseUploadLease(id: number): Promise<void> {
    await this.run("DELETE FROM upload_leases WHERE id = $1", [id]);
  }

  // --- Native staging (issue 15)

  async stageNar(rec: NewStagedNar, cache: CacheIdentity, quota: number): Promise<{ id: number; replaced: StagedNarRecord | null } | null> {
    try {
      return await this.tx(async (s) => {
        // One owner's stagings queue here, so two replicas cannot both fit in the last of its quota.
        await s.run(`SELECT pg_advisory_xact_lock(${STAGING_LOCK_KEY}, hashtext($1))`, [rec.owner]);
        if (!(await s.one("SELECT 1 FROM caches WHERE id = $1 AND name = $2 AND created_at = $3 FOR SHARE",
          [cache.id, cache.name, cache.createdAt]))) throw new CacheChanged(cache);
        const old = await s.one<StagedRow>(PG_STAGING.replace, [rec.cacheId, rec.file]);
        if (old) await s.run(PG_STAGING.dropLease, [old.lease_id]);
        if ((await s.stagedBytes(rec.owner, rec.createdAt)) + rec.narSize > quota) throw new OverQuota();
        await s.run(PG_STAGING.leaseUntil, [rec.expiresAt, rec.leaseId]);
        const id = (await s.one<{ id: number }>(PG_STAGING.insert, [rec.cacheId, rec.file, rec.owner, rec.leaseId, rec.narHash, rec.narSize,
          JSON.stringify(rec.parts), rec.createdAt, rec.expiresAt]))!.id;
        return { id, replaced: old && toStaged(old) };
      });
    } catch (err) {
      if (err instanceof OverQuota) return null;
      throw err;
    }
  }

  async findStagedNar(cacheId: number, file: string, at: number): Promise<StagedNarRecord | null> {
    const r = await this.one<StagedRow>(PG_STAGING.find, [cacheId, file, at]);
    return r && toStaged(r);
  }

  async stagedBytes(owner: string, at: number): Promise<number> {
    return (await this.one<{ n: number }>(PG_STAGING.liveBytes, [owner, at]))!.n;
  }

  async markStagedDurable(id: number, parts: StagedParts): Promise<boolean> {
    return (await this.run(PG_STAGING.markDurable, [JSON.stringify(parts), id])) === 1;
  }

  async unstageNar(id: number): Promise<StagedNarRecord | null> {
    return await this.tx(async (s) => {
      const r = await s.one<StagedRow>(PG_STAGING.unstage, [id]);
      if (r) await s.run(PG_STAGING.dropLease, [r.lease_id]);
      return r && toStaged(r);
    });
  }

  async expireStagedNars(at: number): Promise<number> {
    return await this.gcStep(async (s) => {
      const rows = await s.all<StagedRow>(PG_STAGING.expire, [at]);
      if (rows.length === 0) return 0;
      await s.run("DELETE FROM upload_leases WHERE id = ANY($1::bigint[])", [rows.map((r) => r.lease_id)]);
      // Nobody reads a pending pack and nobody will commit into these: their bytes go in this run.
      const packs = ownPackIds(rows);
      if (packs.length > 0) await s.run("UPDATE packs SET state = 'deleting', deleting_at = 0 WHERE id = ANY($1::bigint[]) AND state = 'pending'", [packs]);
      return rows.length;
    });
  }

  async oldestLiveLease(at: number): Promise<number | null> {
    return (await this.one<{ t: number | null }>("SELECT MIN(started_at) AS t FROM upload_leases WHERE expires_at > $1", [at]))!.t;
  }

  /** The collector's session lock and the connection that holds it, per holder. */
  private readonly gcLocks = new Map<string, Awaited<ReturnType<SQL["reserve"]>>>();

  /** An advisory session lock on a reserved connection: held while it runs, gone if the process dies. */
  async lockGc(holder: string, _now?: number, _ttlSeconds?: number): Promise<boolean> {
    if (this.gcLocks.has(holder)) return true;
    const conn = await this.root.reserve();
    const r = await conn.unsafe(`SELECT pg_try_advisory_lock(${COLLECT_KEY}) AS ok`) as { ok: boolean }[];
    if (!r[0]!.ok) {
      conn.release();
      return false;
    }
    this.gcLocks.set(holder, conn);
    return true;
  }

  async unlockGc(holder: string): Promise<void> {
    const conn = this.gcLocks.get(holder);
    if (!conn) return;
    this.gcLocks.delete(holder);
    try {
      await conn.unsafe(`SELECT pg_advisory_unlock(${COLLECT_KEY})`);
    } finally {
      conn.release();
    }
  }

  /** Runs fn on a transaction handle and rolls it back: nothing fn wrote through `meta` is kept. */
  async simulate<T>(fn: (meta: MetaStore) => Promise<T>): Promise<T> {
    try {
      await this.tx(async (s) => {
        throw new Rollback(await fn(s));
      });
    } catch (err) {
      if (err instanceof Rollback) return err.value as T;
      throw err;
    }
    throw new Error("internal: simulate did not roll back");
  }

  async expireObjects(cacheId: number, select: (objects: GcObject[], pins: PinRecord[]) => Iterable<number>): Promise<number> {
    return await this.tx(async (s) => {
      await s.run(`SELECT pg_advisory_xact_lock(${CACHE_KEY_BASE} + $1::bigint)`, [cacheId]);
      const rows = await s.all<{ id: number; store_path_hash: string; store_path: string; refs: string; last_accessed_at: number; nar_id: number; file_size: number;
        created_by: string | null; pushed_by_token: string | null; created_at: number }>(
        `SELECT o.id, o.store_path_hash, o.store_path, o.refs, o.last_accessed_at, o.nar_id, n.file_size,
           o.created_by, o.pushed_by_token, o.created_at
         FROM objects o JOIN nars n ON n.id = o.nar_id WHERE o.cache_id = $1`, [cacheId]);
      const objects: GcObject[] = rows.map((r) => ({
        id: r.id, storePathHash: r.store_path_hash, storePath: r.store_path, references: JSON.parse(r.refs),
        lastAccessedAt: r.last_accessed_at, narId: r.nar_id, fileSize: r.file_size,
        createdBy: r.created_by, pushedByToken: r.pushed_by_token, createdAt: Number(r.created_at),
      }));
      const ids = [...select(objects, await s.pinsOf(cacheId))];
      if (ids.length === 0) return 0;
      const gone = await s.all<{ nar_id: number; created_at: number }>(
        "DELETE FROM objects WHERE id = ANY($1::bigint[]) AND cache_id = $2 RETURNING nar_id, created_at", [ids, cacheId]);
      // Their NARs' states read under FOR SHARE: a heal or a hide of one runs wholly before or after.
      const nars = new Map((await s.all<{ id: number; state: string; nar_size: number; file_size: number }>(
        "SELECT id, state, nar_size, file_size FROM nars WHERE id = ANY($1::bigint[]) ORDER BY id FOR SHARE",
        [[...new Set(gone.map((g) => g.nar_id))]])).map((r) => [r.id, r]));
      const deltas = new dash.Deltas();
      for (const g of gone) {
        const nar = nars.get(g.nar_id);
        if (nar?.state === "valid") deltas.add({ cacheId, createdAt: g.created_at, narSize: nar.nar_size, fileSize: nar.file_size }, -1);
      }
      await s.applyDeltas(deltas);
      return gone.length;
    });
  }

  /** A collector step that no commit may interleave with (see GC_WRITE_KEY). */
  private async gcStep<T>(fn: (s: PostgresMetaStore) => Promise<T>): Promise<T> {
    return await this.tx(async (s) => {
      await s.run(`SELECT pg_advisory_xact_lock(${GC_WRITE_KEY})`);
      return await fn(s);
    });
  }

  async deleteUnreferencedNars(): Promise<number> {
    return await this.gcStep((s) => s.run("DELETE FROM nars WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.nar_id = nars.id)"));
  }

  async markUnreferencedChunks(): Promise<number> {
    return await this.gcStep(async (s) => {
      // The highest lease id ever issued (leases are deleted, so not MAX(id)): the sequence's value.
      const seq = (await s.one<{ n: number }>(`SELECT COALESCE((SELECT last_value FROM pg_sequences
        WHERE schemaname = current_schema() AND sequencename = 'upload_leases_id_seq'), 0) AS n`))!.n;
      return await s.run(`UPDATE chunks SET state = 'deleting', mark_seq = $1
        WHERE state = 'valid' AND NOT EXISTS (SELECT 1 FROM nar_chunks nc WHERE nc.chunk_id = chunks.id)`, [seq]);
    });
  }

  async sweepChunks(at: number): Promise<{ count: number; bytes: number }> {
    return await this.gcStep(async (s) => {
      const live = (await s.one<{ id: number | null }>("SELECT MIN(id) AS id FROM upload_leases WHERE expires_at > $1", [at]))!.id;
      const bound = live ?? Number.MAX_SAFE_INTEGER;
      const r = (await s.one<{ n: number; b: number }>(`WITH d AS (DELETE FROM chunks
          WHERE ((state = 'deleting' AND mark_seq < $1) OR state = 'damaged')
            AND NOT EXISTS (SELECT 1 FROM nar_chunks nc WHERE nc.chunk_id = chunks.id)
          RETURNING stored_size)
        SELECT COUNT(*) AS n, COALESCE(SUM(stored_size), 0) AS b FROM d`, [bound]))!;
      await s.run("DELETE FROM upload_leases WHERE expires_at <= $1", [at]);
      return { count: r.n, bytes: r.b };
    });
  }

  async markEmptyPacks(at: number): Promise<number> {
    // See the SQLite driver: not a pack made since the oldest live upload began.
    return await this.gcStep((s) => s.run(`UPDATE packs SET state = 'deleting', deleting_at = $1
      WHERE state = 'valid' AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = packs.id)
        AND created_at < COALESCE((SELECT MIN(started_at) FROM upload_leases WHERE expires_at > $1), $1 + 1)`, [at]));
  }

  async markStalePendingPacks(before: number, at: number): Promise<number> {
    return await this.gcStep(async (s) => {
      const oldest = (await s.one<{ t: number | null }>("SELECT MIN(started_at) AS t FROM upload_leases WHERE expires_at > $1", [at]))!.t;
      const bound = Math.min(before, oldest ?? Number.MAX_SAFE_INTEGER);
      return await s.run(`UPDATE packs SET state = 'deleting', deleting_at = 0
        WHERE state = 'pending' AND created_at < $1 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = packs.id)`, [bound]);
    });
  }

  async packsToDelete(before: number): Promise<PackRecord[]> {
    return await this.all<PackRecord>(`SELECT id, storage_key AS key, size, state FROM packs
      WHERE state = 'deleting' AND deleting_at <= $1 ORDER BY id`, [before]);
  }

  async forgetDeletedPack(packId: number): Promise<void> {
    await this.gcStep((s) => s.run(`DELETE FROM packs WHERE id = $1 AND state = 'deleting'
      AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.pack_id = packs.id)`, [packId]));
  }

  async compactionCandidates(threshold: number): Promise<CompactionCandidate[]> {
    return await this.all<CompactionCandidate>(`SELECT id, key, size, "liveBytes" FROM (
        SELECT p.id, p.storage_key AS key, p.size,
          COALESCE((SELECT SUM(c.stored_size) FROM chunks c WHERE c.pack_id = p.id AND c.state = 'valid'), 0) AS "liveBytes"
        FROM packs p WHERE p.state = 'valid' AND p.size > 0) x
      WHERE "liveBytes" > 0 AND "liveBytes" < size * $1 ORDER BY id`, [threshold]);
  }

  async packLiveChunks(packId: number): Promise<PackChunk[]> {
    return await this.all<PackChunk>(`SELECT id, chunk_hash AS hash, chunk_size AS size, compression, pack_offset AS "offset",
      stored_size AS "storedSize" FROM chunks WHERE pack_id = $1 AND state = 'valid' ORDER BY pack_offset`, [packId]);
  }

  async relocateChunks(newPack: { id: number; size: number }, fromPackId: number, moves: ChunkMove[]): Promise<number> {
    return await this.gcStep(async (s) => {
      await s.run("UPDATE packs SET state = 'valid', size = $1 WHERE id = $2 AND state = 'pending'", [newPack.size, newPack.id]);
      if (moves.length === 0) return 0;
      return await s.run(`UPDATE chunks SET pack_id = $1, pack_offset = v.to_off
        FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS v(id, from_off, to_off)
        WHERE chunks.id = v.id AND chunks.pack_id = $5 AND chunks.pack_offset = v.from_off AND chunks.state IN ('valid', 'deleting')`,
      [newPack.id, moves.map((m) => m.chunkId), moves.map((m) => m.fromOffset), moves.map((m) => m.toOffset), fromPackId]);
    });
  }

  // --- pins

  private async pinsOf(cacheId: number): Promise<PinRecord[]> {
    return (await this.all<{ name: string; store_path_hash: string; store_path: string; created_by: string | null; created_at: number }>(
      "SELECT name, store_path_hash, store_path, created_by, created_at FROM pins WHERE cache_id = $1 ORDER BY name", [cacheId]))
      .map((r) => ({ name: r.name, storePathHash: r.store_path_hash, storePath: r.store_path, createdBy: r.created_by, createdAt: r.created_at }));
  }

  async addPin(cacheId: number, pin: Omit<PinRecord, "createdAt">): Promise<PinRecord | null> {
    const t = now();
    // Shared cache lock: an expiry deciding on this cache sees the pin or runs before it.
    const changes = await this.tx(async (s) => {
      await s.run(`SELECT pg_advisory_xact_lock_shared(${CACHE_KEY_BASE} + $1::bigint)`, [cacheId]);
      return await s.run(`INSERT INTO pins (cache_id, name, store_path_hash, store_path, created_by, created_at)
        SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM objects WHERE cache_id = $1 AND store_path_hash = $3)
        ON CONFLICT (cache_id, name) DO UPDATE SET store_path_hash = excluded.store_path_hash,
          store_path = excluded.store_path, created_by = excluded.created_by, created_at = excluded.created_at`,
      [cacheId, pin.name, pin.storePathHash, pin.storePath, pin.createdBy, t]);
    });
    return changes > 0 ? { ...pin, createdAt: t } : null;
  }

  async listPins(cacheId: number): Promise<PinRecord[]> {
    return await this.pinsOf(cacheId);
  }

  async removePin(cacheId: number, name: string): Promise<boolean> {
    return await this.run("DELETE FROM pins WHERE cache_id = $1 AND name = $2", [cacheId, name]) > 0;
  }

  // --- fsck

  async visibleObjects(): Promise<VisibleObject[]> {
    return await this.all<VisibleObject>(`SELECT c.name AS "cacheName", o.store_path AS "storePath", o.nar_id AS "narId"
      FROM objects o JOIN caches c ON c.id = o.cache_id JOIN nars n ON n.id = o.nar_id AND n.state = 'valid'
      ORDER BY c.name COLLATE "C", o.store_path COLLATE "C"`);
  }

  async markChunksDamaged(chunkIds: number[]): Promise<number> {
    if (chunkIds.length === 0) return 0;
    return await this.tx(async (s) => {
      await s.run("UPDATE chunks SET state = 'damaged' WHERE id = ANY($1::bigint[])", [chunkIds]);
      const hidden = (await s.all<{ id: number }>(`UPDATE nars SET state = 'damaged' WHERE state = 'valid'
        AND id IN (SELECT nar_id FROM nar_chunks WHERE chunk_id = ANY($1::bigint[])) RETURNING id`, [chunkIds])).map((r) => r.id);
      if (hidden.length === 0) return 0;
      // Their paths are hidden: they leave their caches' figures until a push heals the NAR. The
      // NARs are locked by the update, so no path moves onto or off them meanwhile.
      const deltas = new dash.Deltas();
      for (const p of await s.narContributions(hidden)) deltas.add(p, -1);
      await s.applyDeltas(deltas);
      return hidden.length;
    });
  }

  // --- dashboard (issue 14): the same SQL as SQLite's, placeholders numbered.

  readonly engine = "postgresql" as const;

  async cacheStats(cacheId: number): Promise<CacheStats> {
    return dash.toCacheStats(await this.one<dash.CountersRow>(dash.pgPlaceholders(dash.CACHE_STATS), [cacheId]));
  }

  async allCacheStats(): Promise<Map<number, CacheStats>> {
    const rows = await this.all<dash.CountersRow & { cache_id: number }>(dash.ALL_CACHE_STATS);
    return new Map(rows.map((r) => [r.cache_id, dash.toCacheStats(r)]));
  }

  async cacheDailyBytes(cacheId: number, since: number): Promise<DailyBytes[]> {
    return (await this.all<Parameters<typeof dash.toDaily>[0]>(dash.pgPlaceholders(dash.CACHE_DAILY), [cacheId, since])).map(dash.toDaily);
  }

  async listObjects(cacheId: number, query: ListObjectsQuery): Promise<ObjectListing[]> {
    const { sql, params } = dash.listObjectsSql(query, cacheId, "postgresql");
    return (await this.all<Parameters<typeof dash.toListing>[0]>(dash.pgPlaceholders(sql), params)).map(dash.toListing);
  }

  async referrersOf(cacheId: number, basename: string, limit: number): Promise<ObjectListing[]> {
    return (await this.all<Parameters<typeof dash.toListing>[0]>(dash.pgPlaceholders(dash.REFERRERS),
      dash.referrersParams(cacheId, basename, limit))).map(dash.toListing);
  }

  async serverStats(): Promise<ServerStats> {
    return dash.toServerStats((await this.one<Record<string, number>>(dash.pgPlaceholders(dash.SERVER_STATS)))!);
  }

  // --- token registry

  async recordToken(t: Omit<TokenRecord, "revokedAt">): Promise<void> {
    await this.run("INSERT INTO tokens (id, sub, permissions, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
      [t.id, t.sub, t.permissions, t.expiresAt, t.createdAt]);
  }

  async listTokens(): Promise<TokenRecord[]> {
    // Named apart from NUMERIC's "id" (a token id is text) and converted here.
    const rows = await this.all<{ token_id: string; sub: string; permissions: string; expires_at: number; created_at: number; revoked_at: string | null }>(
      `SELECT id AS token_id, sub, permissions, expires_at, created_at, revoked_at FROM tokens ORDER BY created_at, id COLLATE "C"`);
    return rows.map((r) => ({ id: r.token_id, sub: r.sub, permissions: r.permissions, expiresAt: Number(r.expires_at),
      createdAt: Number(r.created_at), revokedAt: r.revoked_at === null ? null : Number(r.revoked_at) }));
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    await this.run("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", [at, id]);
    return (await this.all<{ one: number }>("SELECT 1 AS one FROM tokens WHERE id = $1", [id])).length > 0;
  }

  async revokeSub(sub: string, at: number): Promise<number> {
    return await this.tx(async (s) => {
      await s.run(`INSERT INTO revoked_subs (sub, revoked_at) VALUES ($1, $2)
        ON CONFLICT (sub) DO UPDATE SET revoked_at = GREATEST(revoked_subs.revoked_at, excluded.revoked_at)`, [sub, at]);
      return await s.run("UPDATE tokens SET revoked_at = $1 WHERE sub = $2 AND revoked_at IS NULL", [at, sub]);
    });
  }

  async revocations(): Promise<RevocationList> {
    const ids = await this.all<{ token_id: string }>("SELECT id AS token_id FROM tokens WHERE revoked_at IS NOT NULL");
    const subs = await this.all<{ sub: string; revoked_at: number }>("SELECT sub, revoked_at FROM revoked_subs");
    return { ids: new Set(ids.map((r) => r.token_id)), subs: new Map(subs.map((r) => [r.sub, Number(r.revoked_at)])) };
  }
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

/** The writes that delete or move what a NAR download answer names: each drops the kept answers. */
const SERVED_CHANGES = [
  "deleteCache", "expireObjects", "deleteUnreferencedNars", "markUnreferencedChunks", "sweepChunks", "relocateChunks",
  "markEmptyPacks", "forgetPack", "forgetDeletedPack", "markChunksDamaged",
] as const satisfies readonly (keyof MetaStore)[];
for (const name of SERVED_CHANGES) {
  const proto = PostgresMetaStore.prototype as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const method = proto[name]!;
  proto[name] = async function (this: PostgresMetaStore, ...args: unknown[]): Promise<unknown> {
    PostgresMetaStore.changingServed(this, 1);
    try {
      return await method.apply(this, args);
    } finally {
      PostgresMetaStore.changingServed(this, 1);
    }
  };
}

// A commit or a signature of a path changes its object: the kept one goes before and after.
const PATH_CHANGES: Record<"commitUpload" | "updateServerSig" | "setExtraSigs", (args: unknown[]) => [number, string]> = {
  commitUpload: (args) => { const c = args[0] as UploadCommit; return [c.cache.id, c.object.storePathHash]; },
  updateServerSig: (args) => [args[0] as number, args[1] as string],
  setExtraSigs: (args) => [args[0] as number, args[1] as string],
};
for (const [name, pathOf] of Object.entries(PATH_CHANGES)) {
  const proto = PostgresMetaStore.prototype as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const method = proto[name]!;
  proto[name] = async function (this: PostgresMetaStore, ...args: unknown[]): Promise<unknown> {
    const [cacheId, hash] = pathOf(args);
    PostgresMetaStore.forgetObject(this, cacheId, hash);
    try {
      return await method.apply(this, args);
    } finally {
      PostgresMetaStore.forgetObject(this, cacheId, hash);
    }
  };
}
