import { Database, type Statement } from "bun:sqlite";
import { MIGRATIONS } from "./migrations.ts";
import type {
  CachePatch, CacheRecord, ChunkLocation, Compression, IndexedChunk, MetaStore, NarRecord, NewCache,
  ObjectView, UploadCommit,
} from "./types.ts";

const now = (): number => Math.floor(Date.now() / 1000);

interface CacheRow {
  id: number; name: string; is_public: number; store_dir: string; priority: number;
  upstream_cache_key_names: string; signing_key: string; retention_period: number | null;
  created_at: number;
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
    signingKey: r.signing_key, retentionPeriod: r.retention_period, createdAt: r.created_at,
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
  FROM objects o JOIN nars n ON n.id = o.nar_id`;

/** The embedded metadata store: one SQLite file in WAL mode. */
export class SqliteMetaStore implements MetaStore {
  private readonly db: Database;
  private readonly stmt: Record<string, Statement>;

  constructor(path: string) {
    this.db = new Database(path, { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL");
    this.db.exec("PRAGMA synchronous = NORMAL");
    this.db.exec("PRAGMA foreign_keys = ON");
    this.db.exec("PRAGMA busy_timeout = 5000");
    this.migrate();
    this.stmt = this.prepare();
  }

  private migrate(): void {
    this.db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const row = this.db.query("SELECT version FROM schema_version").get() as { version: number } | null;
    let version = row?.version ?? 0;
    if (!row) this.db.exec("INSERT INTO schema_version (version) VALUES (0)");
    for (; version < MIGRATIONS.length; version++) {
      const sql = MIGRATIONS[version]!;
      this.db.transaction(() => {
        this.db.exec(sql);
        this.db.query("UPDATE schema_version SET version = ?").run(version + 1);
      })();
    }
  }

  private prepare(): Record<string, Statement> {
    const q = (sql: string) => this.db.prepare(sql);
    return {
      getCache: q("SELECT * FROM caches WHERE name = ?"),
      insertCache: q(`INSERT INTO caches (name, is_public, store_dir, priority, upstream_cache_key_names,
        signing_key, retention_period, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      deleteCache: q("DELETE FROM caches WHERE name = ?"),
      hasObject: q("SELECT 1 FROM objects WHERE cache_id = ? AND store_path_hash = ?"),
      getObject: q(`${OBJECT_SELECT} WHERE o.cache_id = ? AND o.store_path_hash = ?`),
      getObjectByNar: q(`${OBJECT_SELECT} WHERE o.cache_id = ? AND n.nar_hash = ? LIMIT 1`),
      updateSig: q("UPDATE objects SET server_sig = ?, server_sig_key = ? WHERE cache_id = ? AND store_path_hash = ?"),
      touch: q("UPDATE objects SET last_accessed_at = ? WHERE cache_id = ? AND store_path_hash = ?"),
      findChunk: q(`SELECT c.id, c.chunk_size AS size, p.storage_key AS packKey, c.pack_offset AS offset,
          c.stored_size AS storedSize
        FROM chunks c JOIN packs p ON p.id = c.pack_id WHERE c.chunk_hash = ? AND c.state = 'valid'`),
      chunkIdByHash: q("SELECT id FROM chunks WHERE chunk_hash = ?"),
      findNar: q("SELECT id, nar_hash, nar_size, num_chunks, state FROM nars WHERE nar_hash = ?"),
      narChunks: q(`SELECT c.id AS chunk_id, c.chunk_hash, c.chunk_size, c.compression, c.pack_id,
          p.storage_key, c.pack_offset, c.stored_size
        FROM nar_chunks nc JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id
        WHERE nc.nar_id = ? ORDER BY nc.seq`),
      insertPack: q("INSERT INTO packs (storage_key, size, state, created_at) VALUES (?, 0, 'pending', ?)"),
      deletePack: q("DELETE FROM packs WHERE id = ? AND state = 'pending'"),
      sealPack: q("UPDATE packs SET state = 'valid', size = ? WHERE id = ?"),
      insertChunk: q(`INSERT INTO chunks (chunk_hash, chunk_size, compression, pack_id, pack_offset,
          stored_size, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'valid', ?)
        ON CONFLICT (chunk_hash) DO UPDATE SET compression = excluded.compression,
          pack_id = excluded.pack_id, pack_offset = excluded.pack_offset,
          stored_size = excluded.stored_size, state = 'valid'
        WHERE chunks.state != 'valid' OR ?8`),
      insertNar: q(`INSERT INTO nars (nar_hash, nar_size, num_chunks, file_size, compression, state, created_at)
        VALUES (?, ?, ?, 0, 'none', 'valid', ?)`),
      summariseNar: q(`UPDATE nars SET
          file_size = (SELECT COALESCE(SUM(c.stored_size), 0) FROM nar_chunks nc
            JOIN chunks c ON c.id = nc.chunk_id WHERE nc.nar_id = nars.id),
          compression = COALESCE((SELECT CASE WHEN COUNT(DISTINCT c.compression) = 1
            THEN MIN(c.compression) ELSE 'mixed' END FROM nar_chunks nc
            JOIN chunks c ON c.id = nc.chunk_id WHERE nc.nar_id = nars.id), 'none')
        WHERE id = ?`),
      insertNarChunk: q("INSERT INTO nar_chunks (nar_id, seq, chunk_id) VALUES (?, ?, ?)"),
      upsertObject: q(`INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, system,
          deriver, ca, sigs, server_sig, server_sig_key, created_by, created_at, last_accessed_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (cache_id, store_path_hash) DO UPDATE SET store_path = excluded.store_path,
          nar_id = excluded.nar_id, refs = excluded.refs, system = excluded.system,
          deriver = excluded.deriver, ca = excluded.ca, sigs = excluded.sigs,
          server_sig = excluded.server_sig, server_sig_key = excluded.server_sig_key,
          created_by = excluded.created_by, created_at = excluded.created_at,
          last_accessed_at = excluded.last_accessed_at`),
    };
  }

  close(): void {
    this.db.close();
  }

  async getCache(name: string): Promise<CacheRecord | null> {
    const row = this.stmt.getCache!.get(name) as CacheRow | null;
    return row ? toCache(row) : null;
  }

  async createCache(c: NewCache): Promise<CacheRecord> {
    this.stmt.insertCache!.run(c.name, c.isPublic ? 1 : 0, c.storeDir, c.priority,
      JSON.stringify(c.upstreamCacheKeyNames), c.signingKey, c.retentionPeriod, now());
    return (await this.getCache(c.name))!;
  }

  async updateCache(name: string, patch: CachePatch): Promise<CacheRecord | null> {
    const columns: Record<keyof CachePatch, string> = {
      isPublic: "is_public", storeDir: "store_dir", priority: "priority",
      upstreamCacheKeyNames: "upstream_cache_key_names", signingKey: "signing_key",
      retentionPeriod: "retention_period",
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
    if (sets.length > 0) {
      this.db.prepare(`UPDATE caches SET ${sets.join(", ")} WHERE name = ?`).run(...values, name);
    }
    return this.getCache(name);
  }

  async deleteCache(name: string): Promise<boolean> {
    return this.stmt.deleteCache!.run(name).changes > 0;
  }

  async missingPaths(cacheId: number, hashes: string[]): Promise<string[]> {
    return hashes.filter((h) => this.stmt.hasObject!.get(cacheId, h) === null);
  }

  async getObject(cacheId: number, storePathHash: string): Promise<ObjectView | null> {
    const row = this.stmt.getObject!.get(cacheId, storePathHash) as ObjectRow | null;
    return row ? toObject(row) : null;
  }

  async getObjectByNarHash(cacheId: number, narHash: string): Promise<ObjectView | null> {
    const row = this.stmt.getObjectByNar!.get(cacheId, narHash) as ObjectRow | null;
    return row ? toObject(row) : null;
  }

  async updateServerSig(cacheId: number, storePathHash: string, sig: string, key: string): Promise<void> {
    this.stmt.updateSig!.run(sig, key, cacheId, storePathHash);
  }

  async touchObjects(cacheId: number, hashes: string[], at: number): Promise<void> {
    this.db.transaction(() => {
      for (const h of hashes) this.stmt.touch!.run(at, cacheId, h);
    })();
  }

  async findChunk(hash: string): Promise<IndexedChunk | null> {
    return (this.stmt.findChunk!.get(hash) as IndexedChunk | null) ?? null;
  }

  async findNar(narHash: string): Promise<NarRecord | null> {
    const r = this.stmt.findNar!.get(narHash) as
      | { id: number; nar_hash: string; nar_size: number; num_chunks: number; state: string }
      | null;
    return r && { id: r.id, narHash: r.nar_hash, narSize: r.nar_size, numChunks: r.num_chunks, state: r.state };
  }

  async narChunks(narId: number): Promise<ChunkLocation[]> {
    const rows = this.stmt.narChunks!.all(narId) as {
      chunk_id: number; chunk_hash: string; chunk_size: number; compression: Compression;
      pack_id: number; storage_key: string; pack_offset: number; stored_size: number;
    }[];
    return rows.map((r) => ({
      chunkId: r.chunk_id, hash: r.chunk_hash, size: r.chunk_size, compression: r.compression,
      packId: r.pack_id, packKey: r.storage_key, offset: r.pack_offset, storedSize: r.stored_size,
    }));
  }

  async createPendingPack(storageKey: string): Promise<number> {
    return Number(this.stmt.insertPack!.run(storageKey, now()).lastInsertRowid);
  }

  async forgetPack(packId: number): Promise<void> {
    this.stmt.deletePack!.run(packId);
  }

  async commitUpload(c: UploadCommit): Promise<{ narId: number; narExisted: boolean }> {
    const t = now();
    return this.db.transaction(() => {
      for (const p of c.packs) this.stmt.sealPack!.run(p.size, p.id);
      for (const ch of c.newChunks) {
        // A concurrent upload may have indexed the same chunk first: keep its copy, unless ours
        // heals an entry whose bytes were lost.
        this.stmt.insertChunk!.run(ch.hash, ch.size, ch.compression, ch.packId, ch.offset, ch.storedSize, t, ch.heals ? 1 : 0);
      }
      const existing = this.stmt.findNar!.get(c.narHash) as { id: number } | null;
      let narId: number;
      if (existing) {
        narId = existing.id;
      } else {
        narId = Number(this.stmt.insertNar!.run(c.narHash, c.narSize, c.chunkHashes.length, t).lastInsertRowid);
        c.chunkHashes.forEach((hash, seq) => {
          const chunk = this.stmt.chunkIdByHash!.get(hash) as { id: number } | null;
          if (!chunk) throw new Error(`internal: chunk ${hash} vanished before commit`);
          this.stmt.insertNarChunk!.run(narId, seq, chunk.id);
        });
        this.stmt.summariseNar!.run(narId);
      }
      const o = c.object;
      this.stmt.upsertObject!.run(c.cacheId, o.storePathHash, o.storePath, narId,
        JSON.stringify(o.references), o.system, o.deriver, o.ca, JSON.stringify(o.sigs),
        o.serverSig, o.serverSigKey, o.createdBy, t, t);
      return { narId, narExisted: existing !== null };
    })();
  }
}
