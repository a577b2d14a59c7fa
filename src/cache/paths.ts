import { GarretError } from "../errors.ts";
import { encodeBase32, decodeBase32 } from "../nix/base32.ts";
import { formatNixBase32 } from "../nix/hash.ts";
import { renderNarInfo } from "../nix/narinfo.ts";
import { fingerprint, formatPublicKey, parseSecretKey, signFingerprint } from "../nix/signing.ts";
import { isValidStorePathHash } from "../nix/store-path.ts";
import type { CacheRecord, ChunkLocation, ObjectView } from "../db/types.ts";
import { narExtension, servedCompression } from "../store/compression.ts";
import { openNar, parseRange, type NarBody } from "../store/nar-reader.ts";
import { authorize, type Caller } from "./access.ts";
import type { Garret } from "./context.ts";

const noSuchObject = (): GarretError => new GarretError("NoSuchObject", "The requested object does not exist.");

export function nixCacheInfo(cache: CacheRecord): string {
  return `StoreDir: ${cache.storeDir}\nWantMassQuery: 1\nPriority: ${cache.priority}\n`;
}

function narFileName(o: ObjectView): string {
  return `${encodeBase32(Buffer.from(o.narHash, "hex"))}${narExtension(servedCompression(o.compression))}`;
}

/** Size of the body a client downloads: the stored frames, or the plain NAR when transcoded. */
function servedSize(o: ObjectView): number {
  return servedCompression(o.compression) === o.compression ? o.fileSize : o.narSize;
}

/** Signature by the cache's current key; stored at upload, remade only after a key change. */
async function serverSignature(g: Garret, cache: CacheRecord, o: ObjectView): Promise<string> {
  const key = parseSecretKey(cache.signingKey);
  const publicKey = formatPublicKey(key);
  if (o.serverSig && o.serverSigKey === publicKey) return o.serverSig;
  const sig = await signFingerprint(key, objectFingerprint(cache, o));
  await g.meta.updateServerSig(cache.id, o.storePathHash, sig, publicKey);
  return sig;
}

export function objectFingerprint(cache: CacheRecord, o: { storePath: string; narHash: string; narSize: number; references: string[] }): string {
  return fingerprint(o.storePath, `sha256:${o.narHash}`, o.narSize, o.references.map((r) => `${cache.storeDir}/${r}`));
}

export async function narInfo(g: Garret, caller: Caller, cacheName: string, storePathHash: string): Promise<string> {
  const cache = await authorize(g, caller, cacheName, "pull");
  if (!isValidStorePathHash(storePathHash)) throw noSuchObject();
  const o = await g.meta.getObject(cache.id, storePathHash);
  if (!o) throw noSuchObject();
  g.access?.record(cache.id, o.storePathHash);
  const sig = await serverSignature(g, cache, o);
  return renderNarInfo({
    storePath: o.storePath,
    url: `nar/${narFileName(o)}`,
    compression: servedCompression(o.compression),
    fileSize: servedSize(o),
    narHash: formatNixBase32(Buffer.from(o.narHash, "hex")),
    narSize: o.narSize,
    references: o.references,
    deriver: o.deriver ?? undefined,
    system: o.system ?? undefined,
    sigs: [sig, ...o.sigs.filter((s) => s !== sig)],
    ca: o.ca ?? undefined,
  });
}

const NAR_FILE = /^([0-9a-df-np-sv-z]{52})(\.nar(?:\.zst|\.br|\.xz)?)$/;

export type NarRequest =
  | { kind: "body"; nar: NarBody }
  | { kind: "unsatisfiable"; size: number }
  | { kind: "redirect"; url: string };

/**
 * A NAR that is exactly one whole pack object, sent as stored, can be fetched by the client
 * straight from the object store (when the backend offers download URLs): the bytes then bypass
 * the server. Any other layout would need a range, which a presigned URL cannot impose on Nix.
 */
function wholePackKey(chunks: ChunkLocation[], transcoded: boolean): string | null {
  if (transcoded || chunks.length === 0) return null;
  const first = chunks[0]!;
  let end = 0;
  for (const c of chunks) {
    if (c.packKey !== first.packKey || c.offset !== end) return null;
    end += c.storedSize;
  }
  return end === first.packSize ? first.packKey : null;
}

/**
 * Opens a NAR of this cache by its URL file name (`<narhash>.nar.zst`), whole or one byte range.
 * With `headOnly` nothing is read from storage.
 */
export async function openCacheNar(
  g: Garret, caller: Caller, cacheName: string, file: string, rangeHeader: string | null, headOnly = false,
): Promise<NarRequest | { kind: "head"; size: number }> {
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
  const o = await g.meta.getObjectByNarHash(cache.id, narHash);
  if (!o || narFileName(o) !== file) throw noSuchObject();
  g.access?.record(cache.id, o.storePathHash);
  const size = servedSize(o);
  if (headOnly) return { kind: "head", size };
  const range = parseRange(rangeHeader, size);
  if (range === "invalid") return { kind: "unsatisfiable", size };
  const chunks = await g.meta.narChunks(o.narId);
  const packKey = range ? null : wholePackKey(chunks, servedCompression(o.compression) !== o.compression);
  const url = packKey ? await g.storage.downloadUrl(packKey) : null;
  if (url) return { kind: "redirect", url };
  try {
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
  const missing = await g.meta.missingPaths(cache.id, hashes);
  // A pusher is about to reference the paths it was told exist: count that as an access, written
  // at once, so a collection that runs before the push completes keeps them (see src/gc/collect.ts).
  const absent = new Set(missing);
  await g.meta.touchObjects(cache.id, hashes.filter((h) => !absent.has(h)), Math.floor(Date.now() / 1000));
  return { missing_paths: missing };
}
