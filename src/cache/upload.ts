import { GarretError } from "../errors.ts";
import { parseSha256 } from "../nix/hash.ts";
import { signFingerprint } from "../nix/signing.ts";
import { isContentAddress, isSignatureText, isSystem } from "../nix/narinfo.ts";
import { cacheKey } from "./keys.ts";
import { isValidStorePathHash, parseStorePath, parseStorePathBasename } from "../nix/store-path.ts";
import { CacheChanged, type CacheRecord } from "../db/types.ts";
import { DecodeError, decodeContent, isSupportedContentEncoding } from "../store/compression.ts";
import { discardStaged, ingestNar, UploadRejected } from "../store/ingest.ts";
import { StorageError } from "../store/storage.ts";
import { authorize, claimsOf, noSuchCache, type Caller } from "./access.ts";
import type { Garret } from "./context.ts";
import { objectFingerprint } from "./paths.ts";
import { withUploadLease } from "../gc/lease.ts";
import { dedupViewOf, readableCaches, type DedupView } from "./dedup-view.ts";
import type { UploadAnswer } from "../api/attic.ts";

export type { UploadAnswer };

/** Upload metadata, as Attic's client sends it (X-Attic-Nar-Info or the JSON preamble). */
export interface UploadInfo {
  cache: string;
  storePathHash: string;
  storePath: string;
  references: string[]; // basenames
  system: string | null;
  deriver: string | null; // basename
  sigs: string[];
  ca: string | null;
  narHash: Uint8Array;
  narSize: number;
}


const bad = (code: "InvalidNarInfo" | "InvalidStorePath", msg: string): GarretError => new GarretError(code, msg);

/** An optional field that becomes a narinfo line, checked against the grammar of that line. */
function optionalField(v: unknown, key: string, valid: (s: string) => boolean, what: string): string | null {
  if (v === undefined || v === null || v === "") return null;
  if (typeof v !== "string") throw bad("InvalidNarInfo", `${key} must be a string`);
  if (v.length > 1024 || !valid(v)) throw bad("InvalidNarInfo", `${key} must be ${what}`);
  return v;
}

/** Deriver is parsed as a store path afterwards; this only keeps line breaks of any kind out. */
const ONE_LINE = (s: string): boolean => !/[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(s);

function storePathOf(v: string, storeDir: string, what: string) {
  try {
    return v.includes("/") ? parseStorePath(v, storeDir) : parseStorePathBasename(v, storeDir);
  } catch (err) {
    throw bad("InvalidStorePath", `${what}: ${(err as Error).message}`);
  }
}

/** Validates upload metadata against the cache it targets. Throws before any byte is read. */
export function parseUploadInfo(raw: unknown, storeDir: string): UploadInfo {
  if (!raw || typeof raw !== "object") throw bad("InvalidNarInfo", "upload metadata must be a JSON object");
  const j = raw as Record<string, unknown>;
  if (typeof j.store_path !== "string") throw bad("InvalidNarInfo", "store_path is required");
  const path = storePathOf(j.store_path, storeDir, "store_path");
  if (typeof j.store_path_hash !== "string" || !isValidStorePathHash(j.store_path_hash)) {
    throw bad("InvalidStorePath", "store_path_hash must be 32 nix-base32 characters");
  }
  if (j.store_path_hash !== path.hash) throw bad("InvalidStorePath", "store_path_hash does not match store_path");
  if (!Array.isArray(j.references)) throw bad("InvalidNarInfo", "references must be a list of store paths");
  const references = j.references.map((r) => {
    if (typeof r !== "string") throw bad("InvalidStorePath", "references must be strings");
    return storePathOf(r, storeDir, "reference").basename;
  });
  const deriver = optionalField(j.deriver, "deriver", ONE_LINE, "one line");
  const sigs = j.sigs ?? [];
  if (!Array.isArray(sigs) || !sigs.every((s) => typeof s === "string" && s.length <= 1024 && isSignatureText(s))) {
    throw bad("InvalidNarInfo", "sigs must be a list of name:base64 signatures");
  }
  if (!Number.isSafeInteger(j.nar_size) || (j.nar_size as number) <= 0) {
    throw bad("InvalidNarInfo", "nar_size must be a positive integer");
  }
  let narHash: Uint8Array;
  try {
    narHash = parseSha256(String(j.nar_hash));
  } catch (err) {
    throw bad("InvalidNarInfo", `nar_hash: ${(err as Error).message}`);
  }
  return {
    cache: String(j.cache),
    storePathHash: path.hash,
    storePath: path.path,
    references,
    system: optionalField(j.system, "system", isSystem, "a Nix system such as x86_64-linux"),
    deriver: deriver === null ? null : storePathOf(deriver, storeDir, "deriver").basename,
    sigs: sigs as string[],
    ca: optionalField(j.ca, "ca", isContentAddress, "a content address (text:sha256:<hash> or fixed:[r:]<algo>:<hash>)"),
    narHash,
    narSize: j.nar_size as number,
  };
}

/**
 * Receives one store path: streams the NAR into the chunk store, verifying hash, size and
 * structure, then makes the path visible in the cache in one transaction. On any failure nothing
 * is visible and the bytes written are deleted.
 */
/** Where a push came from, as the server saw it (recorded with the object). */
export interface PushOrigin {
  client: string | null;
}

/** The token id (jti) of verified claims, when the token carries one. */
export function tokenIdOf(caller: Caller): string | null {
  const jti = (claimsOf(caller) as { jti?: unknown } | null)?.jti;
  return typeof jti === "string" ? jti : null;
}

/** An upload past `[upload] max-nar-size`, native or Attic's. */
export const narTooLarge = (max: number): GarretError => new GarretError("NarTooLarge",
  `the NAR is larger than this server's upload.max-nar-size of ${max} bytes`);

export async function uploadPath(
  g: Garret, caller: Caller, rawInfo: unknown, body: AsyncIterable<Uint8Array>, contentEncoding: string,
  origin: PushOrigin = { client: null },
): Promise<UploadAnswer> {
  const cacheName = (rawInfo as { cache?: unknown } | null)?.cache;
  if (typeof cacheName !== "string") throw bad("InvalidNarInfo", "cache is required");
  const cache: CacheRecord = await authorize(g, caller, cacheName, "push");
  const info = parseUploadInfo(rawInfo, cache.storeDir);
  // Refused before a byte is read: decoding stops at the claimed size, so this bounds the work too.
  const max = g.upload?.maxNarSize ?? null;
  if (max !== null && info.narSize > max) throw narTooLarge(max);
  if (!isSupportedContentEncoding(contentEncoding)) {
    throw new GarretError("UnsupportedEncoding", `Content-Encoding ${contentEncoding} is not supported`);
  }

  // The lease keeps the collector from deleting chunks this upload finds and reuses.
  g.metrics?.uploadStarted();
  try {
    return await withUploadLease(g.meta, () => ingestAndCommit(g, caller, cache, info, body, contentEncoding, origin));
  } finally {
    g.metrics?.uploadEnded();
  }
}

async function ingestAndCommit(
  g: Garret, caller: Caller, cache: CacheRecord, info: UploadInfo, body: AsyncIterable<Uint8Array>, contentEncoding: string,
  origin: PushOrigin,
): Promise<UploadAnswer> {
  const readable = await readableCaches(g, caller);
  let staged;
  try {
    // Decoding stops at the claimed size: a bomb costs no more than an honest NAR of that size.
    const nar = decodeContent(body, contentEncoding, info.narSize);
    staged = await ingestNar(g, nar, { narHash: info.narHash, narSize: info.narSize, maxSize: info.narSize, shownIn: readable }, g.ingest);
  } catch (err) {
    if (err instanceof DecodeError) {
      if (err.reason === "limit") throw new GarretError("SizeMismatch", `NAR is larger than the claimed nar_size ${info.narSize}`);
      throw new GarretError("InvalidEncoding", err.message);
    }
    if (err instanceof UploadRejected) {
      const code = ({ hash: "HashMismatch", file: "HashMismatch", size: "SizeMismatch", structure: "InvalidNar" } as const)[err.reason];
      throw new GarretError(code, err.message);
    }
    if (err instanceof StorageError) throw new GarretError("StorageError", `storage failed, nothing was stored: ${err.message}`);
    throw err;
  }

  let view: DedupView;
  let narId: number;
  try {
    view = await dedupViewOf(g, readable, staged);
    const { secret: key, publicKey } = cacheKey(cache);
    const serverSig = await signFingerprint(key, objectFingerprint(cache, {
      storePath: info.storePath, narHash: staged.narHash, narSize: info.narSize, references: info.references,
    }));
    ({ narId } = await g.meta.commitUpload({
      packs: staged.packs, newChunks: staged.newChunks, chunkHashes: staged.chunkHashes,
      narHash: staged.narHash, narSize: staged.narSize, cache,
      object: {
        storePathHash: info.storePathHash, storePath: info.storePath, references: info.references,
        system: info.system, deriver: info.deriver, ca: info.ca, sigs: info.sigs,
        serverSig, serverSigKey: publicKey, createdBy: claimsOf(caller)?.sub ?? null,
        pushedByToken: tokenIdOf(caller), pushedFrom: origin.client,
      },
    }));
  } catch (err) {
    await discardStaged(g, staged);
    // Destroyed (or destroyed and recreated) while the body streamed: the path must not land in
    // whatever holds that name now. To the uploader it is simply gone.
    if (err instanceof CacheChanged) throw noSuchCache();
    throw err;
  }
  // Committed: nothing after this may discard what the path now uses.
  const answer = await view.answer(narId);
  // /metrics may be open to all: it counts what uploaders were told, never the global store's
  // view (the server page shows that to operators).
  g.metrics?.uploads.inc({ kind: answer.kind });
  g.metrics?.dedupSaved.inc({}, Math.round(answer.frac_deduplicated * staged.narSize));
  return answer;
}
