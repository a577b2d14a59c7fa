import type { ChunkLocation, FsckStore, IngestStore } from "../db/types.ts";
import type { Storage } from "../store/storage.ts";
import { decompressChunk } from "../store/compression.ts";

export interface FsckReport {
  objects: number;
  chunks: number;
  /** Chunks whose bytes were read and hashed (all, unless sampled). */
  verified: number;
  damaged_chunks: number;
  /** Damaged paths per cache name. */
  damaged: Record<string, string[]>;
  repaired: boolean;
}

export interface FsckOptions {
  repair: boolean;
  /** Hash at most this many chunks, chosen at random; lengths are checked for all. null = all. */
  sample: number | null;
  log?: (line: string) => void;
}

/**
 * Checks that every visible object's chunks exist in storage with the right length and hash.
 * With `repair`, damaged chunks are marked so, and every NAR using one becomes hidden: clients
 * fall back to other substituters, pushers are told the path is missing, and a re-push heals it.
 */
export async function fsck(deps: { meta: FsckStore & Pick<IngestStore, "narChunks">; storage: Storage }, opts: FsckOptions): Promise<FsckReport> {
  const { meta, storage } = deps;
  const objects = await meta.visibleObjects();
  const chunks = new Map<number, ChunkLocation>();
  const users = new Map<number, Set<string>>(); // chunk id -> "cache\0path"
  const narChunks = new Map<number, ChunkLocation[]>();
  for (const o of objects) {
    let list = narChunks.get(o.narId);
    if (!list) narChunks.set(o.narId, (list = await meta.narChunks(o.narId)));
    for (const c of list) {
      chunks.set(c.chunkId, c);
      let u = users.get(c.chunkId);
      if (!u) users.set(c.chunkId, (u = new Set()));
      u.add(`${o.cacheName}\0${o.storePath}`);
    }
  }

  const toHash = new Set<number>(chunks.keys());
  if (opts.sample !== null && opts.sample < chunks.size) {
    const ids = [...chunks.keys()];
    for (let i = ids.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
    toHash.clear();
    for (const id of ids.slice(0, opts.sample)) toHash.add(id);
  }

  const packSizes = new Map<string, number | null>();
  const damaged: number[] = [];
  let verified = 0;
  for (const c of chunks.values()) {
    if (!packSizes.has(c.packKey)) packSizes.set(c.packKey, await storage.size(c.packKey));
    const size = packSizes.get(c.packKey)!;
    let ok = size !== null && size >= c.offset + c.storedSize;
    if (ok && toHash.has(c.chunkId)) {
      verified++;
      try {
        const plain = await decompressChunk(await storage.read(c.packKey, { offset: c.offset, length: c.storedSize }), c.compression);
        ok = plain.length === c.size && new Bun.CryptoHasher("sha256").update(plain).digest("hex") === c.hash;
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      damaged.push(c.chunkId);
      opts.log?.(`fsck: chunk ${c.hash} (${c.packKey} @${c.offset}+${c.storedSize}) is damaged`);
    }
  }

  const byCache: Record<string, Set<string>> = {};
  for (const id of damaged) {
    for (const u of users.get(id)!) {
      const [cache, path] = u.split("\0") as [string, string];
      (byCache[cache] ??= new Set()).add(path);
    }
  }
  if (opts.repair && damaged.length > 0) await meta.markChunksDamaged(damaged);
  return {
    objects: objects.length,
    chunks: chunks.size,
    verified,
    damaged_chunks: damaged.length,
    damaged: Object.fromEntries(Object.entries(byCache).map(([k, v]) => [k, [...v].sort()])),
    repaired: opts.repair && damaged.length > 0,
  };
}
