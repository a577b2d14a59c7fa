/** Domain types of the metadata store, shared by every backend. */

export type Compression = "none" | "zstd" | "xz" | "br";

export interface CacheRecord {
  id: number;
  name: string;
  isPublic: boolean;
  storeDir: string;
  priority: number;
  upstreamCacheKeyNames: string[];
  /** Nix secret key file format: `name:base64(seed || public)`. Never leaves the server. */
  signingKey: string;
  /** Seconds; null = the server default. */
  retentionPeriod: number | null;
  /** Stored bytes this cache may hold before least recently used closures go; null = no quota. */
  quotaBytes: number | null;
  createdAt: number;
}

/** What creating a cache takes: a record without the fields the store assigns. */
export type NewCache = Omit<CacheRecord, "id" | "createdAt" | "quotaBytes"> & { quotaBytes?: number | null };

export type CachePatch = Partial<Omit<NewCache, "name">>;

/** Where one chunk's bytes live, in NAR order when returned for a NAR. */
export interface ChunkLocation {
  chunkId: number;
  hash: string;
  size: number;
  compression: Compression;
  packId: number;
  packKey: string;
  /** Size of the whole pack object, so a NAR filling a pack exactly can be served by redirect. */
  packSize: number;
  offset: number;
  storedSize: number;
}

/** What serving a NAR needs, read in one query. */
export interface ServedNar {
  /** An object of the cache that uses the NAR (access is recorded on it). */
  storePathHash: string;
  narId: number;
  narHash: string; // hex
  narSize: number;
  fileSize: number;
  compression: Compression | "mixed";
  chunks: ChunkLocation[];
}

export interface NarRecord {
  id: number;
  narHash: string; // hex
  narSize: number;
  numChunks: number;
  state: string;
}

/** A chunk an upload appended to one of its packs. */
export interface NewChunk {
  hash: string;
  size: number;
  compression: Compression;
  packId: number;
  offset: number;
  storedSize: number;
  /** The index already had this chunk but its bytes were missing: point the index here instead. */
  heals: boolean;
}

/** An indexed chunk, as the upload pipeline sees it when deciding whether to store it again. */
export interface IndexedChunk {
  id: number;
  size: number;
  packKey: string;
  offset: number;
  storedSize: number;
  compression: Compression;
  /** Asked with `shownIn`: whether a path of one of those caches uses this chunk. */
  shown?: boolean;
}

export interface ObjectMeta {
  storePathHash: string;
  storePath: string;
  references: string[]; // basenames
  system: string | null;
  deriver: string | null; // basename
  ca: string | null;
  sigs: string[];
  serverSig: string | null;
  serverSigKey: string | null;
  createdBy: string | null;
  /** The pushing token's id (jti), when it had one. */
  pushedByToken?: string | null;
  /** The client address the push came from. */
  pushedFrom?: string | null;
}

/** One push, as `garret cache log` lists it. */
export interface PushRecord {
  storePath: string;
  storePathHash: string;
  sub: string | null;
  tokenId: string | null;
  client: string | null;
  pushedAt: number;
}

/** The columns pushLog selects, as both engines return them. */
export interface PushRow {
  store_path: string;
  store_path_hash: string;
  created_by: string | null;
  pushed_by_token: string | null;
  pushed_from: string | null;
  created_at: number | string;
}

export const pushRecord = (r: PushRow): PushRecord => ({
  storePath: r.store_path, storePathHash: r.store_path_hash, sub: r.created_by, tokenId: r.pushed_by_token,
  client: r.pushed_from, pushedAt: Number(r.created_at),
});

/** An admin action, as `garret audit` lists it. */
export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  action: string;
  target: string;
  detail: string | null;
}

export interface UploadCommit {
  /**
   * Packs this upload wrote, now durable in storage. A shared one (small uploads written
   * together) is sealed by whichever of its uploads commits first.
   */
  packs: { id: number; size: number; shared?: boolean }[];
  newChunks: NewChunk[];
  /** The NAR's chunks in order, by hash; each is either in newChunks or already indexed. */
  chunkHashes: string[];
  narHash: string;
  narSize: number;
  /** The cache the upload was authorised for; the commit fails with CacheChanged if it is gone. */
  cache: CacheIdentity;
  object: ObjectMeta;
  /**
   * The staged NAR (a native PUT's) this commit publishes: its record and lease go in the same
   * transaction, and the commit fails with StagingGone when the record is no longer there
   * (expired and collected, or replaced by a new PUT of the same file).
   */
  stagedId?: number;
}

/** The staged NAR a commit was to publish expired, was collected or was replaced meanwhile. */
export class StagingGone extends Error {
  constructor(id: number) {
    super(`staged NAR ${id} is no longer staged`);
  }
}

/** What committing a staged NAR needs besides its hash and size. */
export interface StagedParts {
  chunkHashes: string[];
  newChunks: NewChunk[];
  /** Its packs, with their storage keys (to delete them when it is dropped). */
  packs: { id: number; size: number; key: string; shared?: boolean }[];
}

/** A NAR a native `nix copy` PUT staged: durable in storage, named by no narinfo yet. */
export interface StagedNarRecord {
  id: number;
  cacheId: number;
  /** Its name under nar/, as Nix PUT it (`<filehash>.nar.zst`). */
  file: string;
  /** Whose staging quota it counts against. */
  owner: string;
  /** The upload lease it holds until published, replaced or expired (see src/gc/collect.ts). */
  leaseId: number;
  narHash: string;
  narSize: number;
  /** Final once `durable`: until its packs are synced, new chunks' places may still move. */
  parts: StagedParts;
  /** Its packs are written and synced: only then may a commit publish it. */
  durable: boolean;
  createdAt: number;
  expiresAt: number;
}

export type NewStagedNar = Omit<StagedNarRecord, "id" | "durable">;

/** Native `nix copy` staging (issue 15), shared by every replica through the database. */
export interface StagingStore {
  /**
   * Records a staged NAR (not yet durable), replacing one of the same cache and file (returned,
   * with its lease released, so its packs can go once it is durable), in one transaction that also checks the cache is still the one
   * authorised (else CacheChanged) and that the owner's live staged bytes stay within `quota`
   * (else null, and nothing changed).
   */
  stageNar(rec: NewStagedNar, cache: CacheIdentity, quota: number): Promise<{ id: number; replaced: StagedNarRecord | null } | null>;
  /** The live (unexpired at `at`) staged NAR of this cache under this file name. */
  findStagedNar(cacheId: number, file: string, at: number): Promise<StagedNarRecord | null>;
  /** NAR bytes the owner holds staged and unexpired at `at`. */
  stagedBytes(owner: string, at: number): Promise<number>;
  /**
   * Records that a staged NAR's packs are durable, with its final parts; false when the record is
   * gone (replaced or expired meanwhile: nobody will commit it, and its packs are the caller's to drop).
   */
  markStagedDurable(id: number, parts: StagedParts): Promise<boolean>;
  /** Deletes a staged NAR's record and releases its lease; returns it when it was still there. */
  unstageNar(id: number): Promise<StagedNarRecord | null>;
  /**
   * The collector's first step: deletes staged NARs expired at `at` and their leases, and marks
   * their own (unshared) pending packs for deletion at once; returns how many went.
   */
  expireStagedNars(at: number): Promise<number>;
}

/**
 * What makes a cache the one a caller was authorised for. Ids are never reused, but a write that
 * read the cache before an await checks all three inside the transaction that writes.
 */
export type CacheIdentity = Pick<CacheRecord, "id" | "name" | "createdAt">;

/** The cache a write was authorised for was destroyed (or replaced) before the write. */
export class CacheChanged extends Error {
  constructor(cache: CacheIdentity) {
    super(`cache ${cache.name} (id ${cache.id}) no longer exists as it was when the request began`);
  }
}

export interface ObjectView {
  cacheId: number;
  storePathHash: string;
  storePath: string;
  references: string[];
  system: string | null;
  deriver: string | null;
  ca: string | null;
  sigs: string[];
  serverSig: string | null;
  serverSigKey: string | null;
  narId: number;
  narHash: string;
  narSize: number;
  /** Sum of the stored (compressed) chunk sizes, and their common compression or "mixed". */
  fileSize: number;
  compression: Compression | "mixed";
}

/** An object as the collector sees it when deciding what a cache keeps. */
export interface GcObject {
  id: number;
  storePathHash: string;
  storePath: string;
  references: string[]; // basenames
  lastAccessedAt: number;
  narId: number;
  /** Stored (compressed) size of its NAR. */
  fileSize: number;
  /** Provenance (purge selects by it): the pusher's sub, token id, and when. */
  createdBy?: string | null;
  pushedByToken?: string | null;
  createdAt?: number;
}

export interface PinRecord {
  name: string;
  storePathHash: string;
  storePath: string;
  createdBy: string | null;
  createdAt: number;
}

export interface PackRecord {
  id: number;
  key: string;
  size: number;
  state: "pending" | "valid" | "deleting";
}

/** A pack whose live (indexed, valid) bytes are a small part of its size. */
export interface CompactionCandidate {
  id: number;
  key: string;
  size: number;
  liveBytes: number;
}

/** A chunk to copy when compacting a pack. */
export interface PackChunk {
  id: number;
  hash: string;
  size: number;
  compression: Compression;
  offset: number;
  storedSize: number;
}

export interface ChunkMove {
  chunkId: number;
  fromOffset: number;
  toOffset: number;
}

/** A path a cache serves, for fsck. */
export interface VisibleObject {
  cacheName: string;
  storePath: string;
  narId: number;
}

/**
 * The metadata store. Async so that a networked database can implement it; the embedded SQLite
 * backend answers synchronously underneath.
 */
/** A minted token as the registry keeps it (never the token itself). Times in Unix seconds. */
export interface TokenRecord {
  id: string;
  sub: string;
  /** The token's Attic claim `caches`, as JSON text. */
  permissions: string;
  expiresAt: number;
  createdAt: number;
  revokedAt: number | null;
}

/** What a server checks every token against: revoked ids, and subs revoked at a time. */
export interface RevocationList {
  ids: Set<string>;
  subs: Map<string, number>;
}

/** Caches: their records, by name or all of them. */
export interface CacheStore {
  getCache(name: string): Promise<CacheRecord | null>;
  createCache(cache: NewCache): Promise<CacheRecord>;
  /** Changes the cache if it is still the one identified (see CacheIdentity); null when it is gone. */
  updateCache(cache: CacheIdentity, patch: CachePatch): Promise<CacheRecord | null>;
  /** Destroys the cache if it is still the one identified; false when it is gone. */
  deleteCache(cache: CacheIdentity): Promise<boolean>;
  listCaches(): Promise<CacheRecord[]>;
}

/** Serving: what narinfo, NAR downloads and get-missing-paths read, and the access times they record. */
export interface ServingStore {
  /**
   * Of the given store path hashes, those the cache does not hold, in one (or a few) statements.
   * With `touchAt`, the held ones last accessed before `staleBefore` (default: all of them) are
   * recorded as accessed at `touchAt`, atomically with the answer: no path can be answered present
   * and then expired before its access is on record. Rows accessed since `staleBefore` are not
   * rewritten (rewriting 10 000 rows per call was most of its cost); the caller picks
   * `staleBefore` so that such rows are younger than any retention cutoff.
   */
  missingPaths(cacheId: number, storePathHashes: string[], touchAt?: number, staleBefore?: number): Promise<string[]>;
  getObject(cacheId: number, storePathHash: string): Promise<ObjectView | null>;
  /** For a NAR download: a valid NAR with this hash that an object of this cache uses, and its chunks in order. */
  narToServe(cacheId: number, narHash: string): Promise<ServedNar | null>;
  /** Whether a valid NAR with this hash is used by a path of one of these caches (an uploader's view of dedup). */
  narInCaches(narHash: string, cacheIds: number[]): Promise<boolean>;
  /**
   * A NAR's stored size, and the uncompressed bytes of its distinct chunks that no other NAR used
   * by a path of these caches has: what an uploader who may read only those caches stored anew.
   */
  narSharing(narId: number, cacheIds: number[]): Promise<{ fileSize: number; unsharedBytes: number }>;
  updateServerSig(cacheId: number, storePathHash: string, sig: string, key: string): Promise<void>;
  /**
   * Replaces a path's extra signatures (those besides the server's own), e.g. after `nix store
   * sign`, only while the path still has the NAR and the signatures the caller read (`seen`):
   * false, and nothing written, when a push or another signer changed them meanwhile.
   */
  setExtraSigs(cacheId: number, storePathHash: string, seen: { narId: number; sigs: string[] }, sigs: string[]): Promise<boolean>;
  touchObjects(cacheId: number, storePathHashes: string[], at: number): Promise<void>;
}

/** Ingest: chunk and NAR lookups of an upload, its packs, its lease, and its commit. */
export interface IngestStore {
  /**
   * The valid chunks among these hashes, in one statement (an upload asks for each piece's chunks
   * at once). With `shownIn`, each also says whether a path of one of those caches uses it.
   */
  findChunks(hashes: string[], shownIn?: number[]): Promise<Map<string, IndexedChunk>>;
  findNar(narHash: string): Promise<NarRecord | null>;
  narChunks(narId: number): Promise<ChunkLocation[]>;
  /** Records a pack before any byte is written, so a crash leaves a trace for the collector. */
  createPendingPack(storageKey: string): Promise<number>;
  /** Removes the record of a pack whose upload failed and whose bytes were deleted. */
  forgetPack(packId: number): Promise<void>;
  /** Makes an upload visible, atomically. Returns the NAR id and whether it already existed. */
  commitUpload(commit: UploadCommit): Promise<{ narId: number; narExisted: boolean }>;
  /** Registers an upload in flight; returns its lease id. */
  acquireUploadLease(now: number, ttlSeconds: number): Promise<number>;
  renewUploadLease(id: number, now: number, ttlSeconds: number): Promise<void>;
  releaseUploadLease(id: number): Promise<void>;
}

/** Garbage collection (issue 5). Safety rules are explained in src/gc/collect.ts. */
export interface GcStore {
  /** Start time of the oldest upload still in flight, or null. */
  oldestLiveLease(now: number): Promise<number | null>;
  /** Takes (or renews) the collector lock; false when another live holder has it. */
  lockGc(holder: string, now: number, ttlSeconds: number): Promise<boolean>;
  unlockGc(holder: string): Promise<void>;
  /**
   * Runs fn on a transaction handle and then rolls back every metadata change made through it
   * (for --dry-run). fn must use the handle, not this store: on a pool, this store's other
   * connections would commit for real.
   */
  simulate<T>(fn: (meta: MetaStore) => Promise<T>): Promise<T>;
  /**
   * In one transaction: reads the cache's objects and pins, asks `select` which object ids to
   * delete, deletes them. Atomic, so no upload can add a referrer between decision and delete.
   * An error thrown by `select` rolls it back and is passed on.
   */
  expireObjects(cacheId: number, select: (objects: GcObject[], pins: PinRecord[]) => Iterable<number>): Promise<number>;
  /** Deletes NARs no object references (metadata only: their bytes are chunks). */
  deleteUnreferencedNars(): Promise<number>;
  /** Marks chunks no NAR references 'deleting', stamped with the highest lease id issued so far. */
  markUnreferencedChunks(): Promise<number>;
  /** Deletes 'deleting' chunks no upload in flight can still be reusing. */
  sweepChunks(now: number): Promise<{ count: number; bytes: number }>;
  /** Valid packs no chunk points into become 'deleting' as of now. */
  markEmptyPacks(now: number): Promise<number>;
  /** Pending packs created before `before` and before every live upload: crash leftovers. */
  markStalePendingPacks(before: number, now: number): Promise<number>;
  /** 'deleting' packs whose grace period ended (deleting_at <= before). */
  packsToDelete(before: number): Promise<PackRecord[]>;
  /** Drops the record of a deleted pack (only if no chunk points into it). */
  forgetDeletedPack(packId: number): Promise<void>;
  compactionCandidates(threshold: number): Promise<CompactionCandidate[]>;
  packLiveChunks(packId: number): Promise<PackChunk[]>;
  /** Seals the new pack and points the moved chunks at it, where they still point at the old one. */
  relocateChunks(newPack: { id: number; size: number }, fromPackId: number, moves: ChunkMove[]): Promise<number>;
}

/** Pins. */
export interface PinStore {
  /** Pins a path the cache holds at the moment of the write; null when it holds no such path. */
  addPin(cacheId: number, pin: Omit<PinRecord, "createdAt">): Promise<PinRecord | null>;
  listPins(cacheId: number): Promise<PinRecord[]>;
  removePin(cacheId: number, name: string): Promise<boolean>;
}

/** fsck: what it checks, and the damage it records. */
export interface FsckStore {
  visibleObjects(): Promise<VisibleObject[]>;
  /** Marks chunks damaged and every NAR using them damaged (hidden); returns the NARs marked. */
  markChunksDamaged(chunkIds: number[]): Promise<number>;
}

/** The token registry and revocations. */
export interface TokenStore {
  recordToken(token: Omit<TokenRecord, "revokedAt">): Promise<void>;
  listTokens(): Promise<TokenRecord[]>;
  /** Revokes one id (false if unknown); already revoked stays revoked at its first time. */
  revokeToken(id: string, at: number): Promise<boolean>;
  /** Revokes a sub: every token of it issued up to `at`, registered or not; returns registered ones revoked. */
  revokeSub(sub: string, at: number): Promise<number>;
  revocations(): Promise<RevocationList>;
}

/** Provenance and the audit log. */
export interface AuditStore {
  /** The pushes of a cache, newest first, optionally of one uploader (sub) or one token id. */
  pushLog(cacheId: number, filter: { sub?: string; tokenId?: string }): Promise<PushRecord[]>;
  recordAudit(entry: Omit<AuditEntry, "id" | "at">): Promise<void>;
  /** The audit log, oldest first. */
  auditLog(): Promise<AuditEntry[]>;
}

/**
 * The whole metadata store: every role above (callers take the narrowest one they need), on
 * SQLite (src/db/sqlite.ts) or PostgreSQL (src/db/postgres.ts), opened by openMetaStore.
 */
export interface MetaStore extends CacheStore, ServingStore, IngestStore, StagingStore, GcStore, PinStore, FsckStore, TokenStore, AuditStore, DashboardReads {
  close(): void;
  /** One trivial query: resolves when the database answers (readiness probes). */
  ping(): Promise<void>;
}

// --- Dashboard reads (issue 14). Plain SQL shared by both engines: src/db/dashboard-sql.ts.

/** What one cache holds, from counters every write moves (see dashboard-sql.ts): paths whose NAR is valid. */
export interface CacheStats {
  paths: number;
  /** Sum of the NAR sizes of its paths: what clients download, before any deduplication. */
  narBytes: number;
  /** Stored (compressed) size of its paths' NARs, a NAR counted once per path using it. */
  storedBytes: number;
  /** Latest push (seconds), or null for a cache never pushed to; expiring that path leaves it. */
  lastPushAt: number | null;
}

/** Bytes pushed per UTC day, for the chart of logical vs stored bytes over time. */
export interface DailyBytes {
  day: number; // seconds at 00:00 UTC
  narBytes: number;
  storedBytes: number;
}

/** One path of a cache in a listing, newest first; (createdAt, id) is the cursor. */
export interface ObjectListing {
  id: number;
  storePathHash: string;
  storePath: string;
  narSize: number;
  fileSize: number;
  createdBy: string | null;
  createdAt: number;
}

export interface ListObjectsQuery {
  /** Prefix of the name part of the store path (case-insensitive), or of its hash; matched literally. */
  q?: string;
  limit: number;
  /** Paths strictly older than this (created_at, id) pair. */
  before?: { createdAt: number; id: number };
}

/** The whole server, for its administrators. */
export interface ServerStats {
  caches: number;
  paths: number;
  /** Sum of every cache's paths' NAR sizes. */
  narBytes: number;
  /** Distinct NARs, and their uncompressed size. */
  nars: number;
  uniqueNarBytes: number;
  chunks: number;
  chunkBytes: number;
  /** Compressed bytes of the distinct chunks: what storage holds, less pack slack. */
  storedBytes: number;
  packs: number;
  packBytes: number;
}

/** The dashboard's reads, implemented by every MetaStore. */
export interface DashboardReads {
  /** Which engine holds the metadata, for the server page. */
  readonly engine: "sqlite" | "postgresql";
  cacheStats(cacheId: number): Promise<CacheStats>;
  /** Every cache's figures in one read, by cache id (a cache never pushed to may be absent). */
  allCacheStats(): Promise<Map<number, CacheStats>>;
  cacheDailyBytes(cacheId: number, since: number): Promise<DailyBytes[]>;
  listObjects(cacheId: number, query: ListObjectsQuery): Promise<ObjectListing[]>;
  /** Paths of the cache whose references include this basename (at most `limit`). */
  referrersOf(cacheId: number, basename: string, limit: number): Promise<ObjectListing[]>;
  serverStats(): Promise<ServerStats>;
}
