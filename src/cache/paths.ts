import { expectedError, GarretError } from "../errors.ts";
import { encodeBase32, decodeBase32 } from "../nix/base32.ts";
import { formatNixBase32 } from "../nix/hash.ts";
import { renderNarInfo, type NarInfo } from "../nix/narinfo.ts";
import { fingerprint, signFingerprint } from "../nix/signing.ts";
import { cacheKey } from "./keys.ts";
import { isValidStorePathHash } from "../nix/store-path.ts";
import type { CacheRecord, ChunkLocation, ObjectView } from "../db/types.ts";
import { narExtension, servedCompression } from "../store/compression.ts";
import { contiguousRange, openNar, parseRange, type BodyRange, type NarBody } from "../store/nar-reader.ts";
import { authorize, type Caller } from "./access.ts";
import type { Garret } from "./context.ts";

const noSuchObject = (): GarretError => expectedError("NoSuchObject", "The requested object does not exist.");

export function nixCacheInfo(cache: CacheRecord): string {
  return `StoreDir: ${cache.storeDir}\nWantMassQuery: 1\nPriority: ${cache.priority}\n`;
}

export function narFileName(o: Pick<ObjectView, "narHash" | "compression">): string {
  return `${encodeBase32(Buffer.from(o.narHash, "hex"))}${narExtension(servedCompression(o.compression))}`;
}

/** Size of the body a client downloads: the stored frames, or the plain NAR when transcoded. */
function servedSize(o: Pick<ObjectView, "compression" | "fileSize" | "narSize">): number {
  return servedCompression(o.compression) === o.compression ? o.fileSize : o.narSize;
}

/** Signature by the cache's current key; stored at upload, remade only after a key change. */
async function serverSignature(g: Garret, cache: CacheRecord, o: ObjectView): Promise<string> {
  const { secret: key, publicKey } = cacheKey(cache);
  if (o.serverSig && o.serverSigKey === publicKey) return o.serverSig;
  const sig = await signFingerprint(key, objectFingerprint(cache, o));
  await g.meta.updateServerSig(cache.id, o.storePathHash, sig, publicKey);
  return sig;
}

export function objectFingerprint(cache: CacheRecord, o: { storePath: string; narHash: string; narSize: number; references: string[] }): string {
  return fingerprint(o.storePath, `sha256:${o.narHash}`, o.narSize, o.references.map((r) => `${cache.storeDir}/${r}`));
}

/**
 * sha256 of the NAR file exactly as served. Sent plain, that is the NarHash; sent as stored
 * frames, the frames are hashed once, streamed from storage, and remembered by NAR hash (the
 * frames of a NAR never change: a re-upload that heals a chunk rewrites the same bytes).
 * Nix 2.8 asserts on a narinfo without FileHash whenever it re-serialises one (nix store sign).
 */
const fileHashes = new Map<string, Promise<string>>();
const MAX_FILE_HASHES = 100_000;

async function fileHashOf(g: Garret, cache: CacheRecord, o: ObjectView): Promise<string | undefined> {
  if (servedCompression(o.compression) !== o.compression) return formatNixBase32(Buffer.from(o.narHash, "hex"));
  let known = fileHashes.get(o.narHash);
  if (!known) {
    known = (async () => {
      const served = await g.meta.narToServe(cache.id, o.narHash);
      if (!served) throw new Error("gone");
      const where = contiguousRange(served.chunks);
      if (where && g.narMemory?.fits(where.length)) {
        // A small NAR back to back in one pack (a fresh push): its bytes, read once and kept for
        // the NAR GETs that follow, are the file; streaming them cost several times the read.
        return formatNixBase32(Bun.SHA256.hash(await heldBytes(g, where)) as Uint8Array);
      }
      const body = await openNar(g.storage, served.chunks, o.compression, null);
      const h = new Bun.CryptoHasher("sha256");
      for await (const piece of body.stream) h.update(piece);
      return formatNixBase32(h.digest() as Uint8Array);
    })();
    if (fileHashes.size >= MAX_FILE_HASHES) fileHashes.delete(fileHashes.keys().next().value!);
    fileHashes.set(o.narHash, known);
    known.catch(() => fileHashes.delete(o.narHash));
  }
  // Storage trouble leaves the line out rather than failing the narinfo (substitution needs none).
  return known.catch(() => undefined);
}

export async function narInfo(g: Garret, caller: Caller, cacheName: string, storePathHash: string): Promise<string> {
  const cache = await authorize(g, caller, cacheName, "pull");
  if (!isValidStorePathHash(storePathHash)) throw noSuchObject();
  const o = await g.meta.getObject(cache.id, storePathHash);
  if (!o) throw noSuchObject();
  g.access?.record(cache.id, o.storePathHash);
  return renderNarInfo(await servedNarInfo(g, cache, o));
}

/** The narinfo a path of this cache is served with (also what `nix store sign` sends back, plus its Sig). */
export async function servedNarInfo(g: Garret, cache: CacheRecord, o: ObjectView): Promise<NarInfo> {
  const sig = await serverSignature(g, cache, o);
  return {
    storePath: o.storePath,
    url: `nar/${narFileName(o)}`,
    compression: servedCompression(o.compression),
    fileHash: await fileHashOf(g, cache, o),
    fileSize: servedSize(o),
    narHash: formatNixBase32(Buffer.from(o.narHash, "hex")),
    narSize: o.narSize,
    references: o.references,
    deriver: o.deriver ?? undefined,
    system: o.system ?? undefined,
    sigs: [sig, ...o.sigs.filter((s) => s !== sig)],
    ca: o.ca ?? undefined,
  };
}

const NAR_FILE = /^([0-9a-df-np-sv-z]{52})(\.nar(?:\.zst|\.br|\.xz)?)$/;

export type NarRequest =
  | { kind: "body"; nar: NarBody }
  | { kind: "file"; body: Blob; size: number; range: BodyRange | null }
  | { kind: "unsatisfiable"; size: number }
  | { kind: "redirect"; url: string };

/** What a NAR request gets: a NarRequest, or only the size for a HEAD. */
export type NarAnswer = NarRequest | { kind: "head"; size: number };

type Contiguous = NonNullable<ReturnType<typeof contiguousRange>>;

/** A small NAR's bytes from memory (HotBytes), read from storage and kept on first use. */
async function heldBytes(g: Garret, where: Contiguous): Promise<Blob> {
  const key = `${where.packKey}:${where.offset}:${where.length}`;
  let held = g.narMemory!.get(key);
  if (!held) {
    held = new Blob([await g.storage.read(where.packKey, { offset: where.offset, length: where.length })]);
    g.narMemory!.set(key, held);
  }
  return held;
}

/**
 * The fast paths for a NAR sent as stored whose chunks lie back to back in one pack (the usual
 * layout of a freshly pushed path): a redirect to the object store when it is the whole pack and
 * the backend offers download URLs (a presigned URL cannot carry a range Nix would send); else,
 * for a small NAR, its bytes from memory (read once from storage, see HotBytes); else the byte
 * range sent like a static file (Content-Length) when the backend has files.
 */
async function fastPath(g: Garret, chunks: ChunkLocation[], range: BodyRange | null): Promise<NarRequest | null> {
  const where = contiguousRange(chunks);
  if (!where) return null;
  if (!range && where.offset === 0 && where.length === where.packSize) {
    const url = await g.storage.downloadUrl(where.packKey);
    if (url) return { kind: "redirect", url };
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? where.length - 1;
  if (g.narMemory?.fits(where.length)) {
    const held = await heldBytes(g, where);
    return { kind: "file", body: range ? held.slice(start, end + 1) : held, size: where.length, range };
  }
  const blob = await g.storage.fileSlice(where.packKey, { offset: where.offset + start, length: end - start + 1 });
  return blob ? { kind: "file", body: blob, size: where.length, range } : null;
}

/**
 * Opens a NAR of this cache by its URL file name (`<narhash>.nar.zst`), whole or one byte range.
 * With `headOnly` nothing is read from storage.
 */
export async function openCacheNar(
  g: Garret, caller: Caller, cacheName: string, file: string, rangeHeader: string | null, headOnly = false,
): Promise<NarAnswer> {
  const cache = await authorize(g, caller, cacheName, "pull");
  const m = NAR_FILE.exec(file);
  if (!m) throw noSuchObject();
  let narHash: string;
  try {
    narHash = Buffer.from(decodeBase32(m[1]!)).toString("hex");
  } catch {
    throw noSuchObject();
  }
  // Only NARs this cache references are reachable through it: the global store stays invisible.
  const o = await g.meta.narToServe(cache.id, narHash);
  // decodeBase32 takes only the canonical spelling, so the hash part matches: only the extension is left to check.
  if (!o || m[2] !== narExtension(servedCompression(o.compression))) throw noSuchObject();
  g.access?.record(cache.id, o.storePathHash);
  const size = servedSize(o);
  if (headOnly) return { kind: "head", size };
  const range = parseRange(rangeHeader, size);
  if (range === "invalid") return { kind: "unsatisfiable", size };
  const chunks = o.chunks;
  try {
    const fast = servedCompression(o.compression) === o.compression ? await fastPath(g, chunks, range) : null;
    if (fast) return fast;
    return { kind: "body", nar: await openNar(g.storage, chunks, o.compression, range) };
  } catch {
    throw new GarretError("StorageError", `NAR ${file} could not be read from storage`);
  }
}

export async function missingPaths(g: Garret, caller: Caller, body: unknown): Promise<{ missing_paths: string[] }> {
  const b = body as { cache?: unknown; store_path_hashes?: unknown } | null;
  if (!b || typeof b.cache !== "string" || !Array.isArray(b.store_path_hashes)
    || !b.store_path_hashes.every((h) => typeof h === "string")) {
    throw new GarretError("RequestError", 'expected {"cache": name, "store_path_hashes": [hash...]}');
  }
  const cache = await authorize(g, caller, b.cache, "push");
  const hashes = b.store_path_hashes as string[];
  const bad = hashes.find((h) => !isValidStorePathHash(h));
  if (bad !== undefined) throw new GarretError("InvalidStorePath", `invalid store path hash ${JSON.stringify(bad)}`);
  // A pusher is about to reference the paths it was told exist: count that as an access, in the
  // statement that answers, so a collection that runs before the push completes keeps them (see
  // src/gc/collect.ts); answering and then touching left a gap a collector could expire them in.
  const now = Math.floor(Date.now() / 1000);
  const period = cache.retentionPeriod ?? g.defaultRetention ?? 0;
  return { missing_paths: await g.meta.missingPaths(cache.id, hashes, now, now - accessGranularity(period)) };
}

/**
 * How recent an access must be for get-missing-paths not to rewrite it: an hour, or a 24th of a
 * shorter retention period, so an untouched path is still far younger than the cutoff. Pushers ask
 * about the same dependencies over and over; rewriting them all each time was most of the cost.
 */
export function accessGranularity(retentionSeconds: number): number {
  return retentionSeconds > 0 ? Math.min(3600, Math.floor(retentionSeconds / 24)) : 3600;
}
