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
  createdAt: number;
}

export interface NewCache {
  name: string;
  isPublic: boolean;
  storeDir: string;
  priority: number;
  upstreamCacheKeyNames: string[];
  signingKey: string;
  retentionPeriod: number | null;
}

export type CachePatch = Partial<Omit<NewCache, "name">>;

/** Where one chunk's bytes live, in NAR order when returned for a NAR. */
export interface ChunkLocation {
  chunkId: number;
  hash: string;
  size: number;
  compression: Compression;
  packId: number;
  packKey: string;
  offset: number;
  storedSize: number;
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
}

export interface UploadCommit {
  /** Packs this upload wrote, now durable in storage. */
  packs: { id: number; size: number }[];
  newChunks: NewChunk[];
  /** The NAR's chunks in order, by hash; each is either in newChunks or already indexed. */
  chunkHashes: string[];
  narHash: string;
  narSize: number;
  cacheId: number;
  object: ObjectMeta;
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

/**
 * The metadata store. Async so that a networked database can implement it; the embedded SQLite
 * backend answers synchronously underneath.
 */
export interface MetaStore {
  close(): void;

  getCache(name: string): Promise<CacheRecord | null>;
  createCache(cache: NewCache): Promise<CacheRecord>;
  updateCache(name: string, patch: CachePatch): Promise<CacheRecord | null>;
  deleteCache(name: string): Promise<boolean>;

  /** Of the given store path hashes, those the cache does not hold. */
  missingPaths(cacheId: number, storePathHashes: string[]): Promise<string[]>;
  getObject(cacheId: number, storePathHash: string): Promise<ObjectView | null>;
  /** The object of this cache whose NAR has this hash, if any (for NAR downloads). */
  getObjectByNarHash(cacheId: number, narHash: string): Promise<ObjectView | null>;
  updateServerSig(cacheId: number, storePathHash: string, sig: string, key: string): Promise<void>;
  touchObjects(cacheId: number, storePathHashes: string[], at: number): Promise<void>;

  /** A valid chunk with this hash, or null (absent, or marked damaged). */
  findChunk(hash: string): Promise<IndexedChunk | null>;
  findNar(narHash: string): Promise<NarRecord | null>;
  narChunks(narId: number): Promise<ChunkLocation[]>;

  /** Records a pack before any byte is written, so a crash leaves a trace for the collector. */
  createPendingPack(storageKey: string): Promise<number>;
  /** Removes the record of a pack whose upload failed and whose bytes were deleted. */
  forgetPack(packId: number): Promise<void>;
  /** Makes an upload visible, atomically. Returns the NAR id and whether it already existed. */
  commitUpload(commit: UploadCommit): Promise<{ narId: number; narExisted: boolean }>;
}
