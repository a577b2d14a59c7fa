import { GarretError } from "../errors.ts";
import { decodeBase32, encodeBase32 } from "../nix/base32.ts";
import { formatNixBase32, parseSha256 } from "../nix/hash.ts";
import { parseNarInfo, type NarInfo } from "../nix/narinfo.ts";
import { NixFormatError } from "../nix/errors.ts";
import { isWellFormedSignature, signFingerprint } from "../nix/signing.ts";
import { isValidStorePathHash } from "../nix/store-path.ts";
import { CacheChanged, StagingGone, type CacheRecord, type ObjectView, type StagedNarRecord, type StagedParts } from "../db/types.ts";
import { holdLease, type HeldLease } from "../gc/lease.ts";
import { nowSeconds } from "../gc/config.ts";
import { DecodeError, decodeContent, decodeWhole } from "../store/compression.ts";
import { discardStaged, ingestNar, UploadRejected, type StagedNar } from "../store/ingest.ts";
import { StorageError } from "../store/storage.ts";
import { authorize, claimsOf, noSuchCache, type Caller } from "./access.ts";
import type { Garret } from "./context.ts";
import { readableCaches } from "./dedup-view.ts";
import { cacheKey } from "./keys.ts";
import { objectFingerprint, servedNarInfo } from "./paths.ts";
import { narTooLarge, tokenIdOf, type PushOrigin } from "./upload.ts";

/** `[upload]` settings: how much a token may hold staged, and for how long; the largest NAR taken. */
export interface UploadLimits {
  stagingQuota: number; // bytes of NAR per token
  stagingTtlMs: number;
  /** Bytes of (decoded) NAR one upload may be, native or Attic's; null: no limit. */
  maxNarSize: number | null;
}

export const DEFAULT_UPLOAD: UploadLimits = { stagingQuota: 10 * 1024 ** 3, stagingTtlMs: 3600_000, maxNarSize: null };

/** File names Nix's HTTP binary cache store PUTs a NAR under, and the encoding of each. */
const NAR_PUT = /^([0-9a-df-np-sv-z]{52})\.nar(\.xz|\.zst|\.bz2|\.br)?$/;
const ENCODING_OF: Record<string, string> = { "": "identity", ".zst": "zstd", ".br": "br", ".xz": "xz", ".bz2": "bzip2" };

/** What publishing a NAR needs: a staged one's record, or a stored one named as Nix names it. */
interface Publishable {
  narHash: string;
  narSize: number;
  parts: StagedParts;
  /** The staged record the commit consumes; none for a NAR already stored. */
  stagedId?: number;
}

const bad = (code: "InvalidNarInfo" | "InvalidStorePath" | "NoSuchObject", msg: string): GarretError => new GarretError(code, msg);

/**
 * Nix's own HTTP binary cache store as an uploader: a NAR PUT is measured and staged (its bytes
 * durable in storage, recorded in the database: private to that cache, counted against the
 * sender's quota, dropped by the collector once past the TTL), and a narinfo PUT naming it is
 * validated against what the NAR really was, then published signed with the cache's key through
 * the same commit as Attic's upload-path. The record is in the database, not in this process:
 * the narinfo may reach another replica, or this server after a restart.
 */
export class NativePush {
  /**
   * Seals running in this process, by staged record: a NAR PUT answers once its NAR is measured
   * and recorded, and its packs are synced just after (the fsync overlaps Nix's next request). A
   * narinfo PUT here waits on the seal itself; one on another replica waits for the record to say
   * durable. Each resolves to the NAR's final parts.
   */
  private readonly sealing = new Map<number, Promise<StagedParts>>();

  constructor(private readonly g: Garret, private readonly limits: UploadLimits = DEFAULT_UPLOAD) {}

  private ownerOf(caller: Caller): string {
    return claimsOf(caller)?.sub ?? "";
  }

  private get ttlSeconds(): number {
    return Math.max(1, Math.ceil(this.limits.stagingTtlMs / 1000));
  }

  /**
   * `PUT /<cache>/nar/<filehash>.nar[.ext]`. `body` is the whole body when the route read it in
   * one go (a small one): then it is hashed and decoded in one call each.
   */
  async putNar(caller: Caller, cacheName: string, file: string, body: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    const cache = await authorize(this.g, caller, cacheName, "push");
    const m = NAR_PUT.exec(file);
    if (!m) throw bad("InvalidNarInfo", `${file} is not a NAR file name (<nix-base32 sha256>.nar[.xz|.zst|.bz2|.br])`);
    const encoding = ENCODING_OF[m[2] ?? ""];
    if (!encoding) throw new GarretError("UnsupportedEncoding", `${m[2]} NARs are not supported yet`);
    let claimed: Uint8Array;
    try {
      claimed = decodeBase32(m[1]!);
    } catch {
      throw bad("InvalidNarInfo", `${file}: the file hash is not nix-base32`);
    }
    const owner = this.ownerOf(caller);
    const quota = this.limits.stagingQuota;
    // A first bound on how far the body may decode; the record's insert checks the quota again.
    const left = quota - (await this.g.meta.stagedBytes(owner, nowSeconds()));
    if (left <= 0) throw quotaExceeded(quota);
    // Decoding stops at whichever comes first: the staging room, or the server's largest NAR.
    const max = this.limits.maxNarSize;
    const room = max !== null && max < left ? max : left;
    const tooLarge = (): GarretError => (room === max ? narTooLarge(max) : quotaExceeded(quota));

    const fileHasher = new Bun.CryptoHasher("sha256");
    const check = (): void => {
      const actual = fileHasher.digest() as Uint8Array;
      if (!Buffer.from(actual).equals(Buffer.from(claimed))) {
        throw new UploadRejected("file", `the body hashes to sha256:${encodeBase32(actual)}, not the ${m[1]} its name claims`);
      }
    };
    const readable = await readableCaches(this.g, caller);
    // The NAR's own lease, on record before the ingest looks up a chunk and held past this PUT:
    // the collector keeps what it reuses and what it wrote until it is published or expires.
    const lease = await holdLease(this.g.meta, this.ttlSeconds);
    let nar: StagedNar;
    try {
      let decoded: AsyncIterable<Uint8Array>;
      if (body instanceof Uint8Array) {
        fileHasher.update(body);
        check();
        const whole = decodeWhole(body, encoding, Math.min(room, this.g.ingest.sharedPackBelow));
        decoded = whole ? once(whole) : decodeContent(once(body), encoding, room);
      } else {
        decoded = decodeContent(hashing(body, fileHasher), encoding, room);
      }
      nar = await ingestNar(this.g, decoded, {
        narHash: null, narSize: null, maxSize: room, check: body instanceof Uint8Array ? undefined : check, lateSeal: true, shownIn: readable,
      }, this.g.ingest);
    } catch (err) {
      await lease.release();
      throw asUploadError(err, tooLarge);
    }
    await this.stage(cache, file, owner, lease, nar);
  }

  /** Records a NAR just ingested as staged, or drops it (over quota, cache gone). */
  private async stage(cache: CacheRecord, file: string, owner: string, lease: HeldLease, nar: StagedNar): Promise<void> {
    const at = nowSeconds();
    // Rounded up: a staged NAR waits at least the whole TTL (whole seconds are what is stored).
    const expiresAt = Math.ceil((Date.now() + this.limits.stagingTtlMs) / 1000);
    let staged;
    try {
      lease.keep();
      staged = await this.g.meta.stageNar({
        cacheId: cache.id, file, owner, leaseId: lease.id, narHash: nar.narHash, narSize: nar.narSize,
        parts: { chunkHashes: nar.chunkHashes, newChunks: nar.newChunks, packs: nar.packs },
        createdAt: at, expiresAt,
      }, cache, this.limits.stagingQuota);
    } catch (err) {
      staged = null;
      if (err instanceof CacheChanged) throw noSuchCache();
      throw err;
    } finally {
      if (!staged) {
        await lease.release();
        await discardStaged(this.g, nar);
      }
    }
    if (!staged) throw quotaExceeded(this.limits.stagingQuota);
    this.sealAfter(staged.id, nar);
    // The same file sent again (a retry): the earlier copy's own packs are nobody's now (one still
    // sealing drops its own when it finds its record gone).
    if (staged.replaced?.durable) await discardStaged(this.g, staged.replaced.parts);
  }

  /** Marks the record durable once the NAR's packs are; drops it if they fail or it went meanwhile. */
  private sealAfter(id: number, nar: StagedNar): void {
    const sealed = nar.durable.then(async () => {
      const parts: StagedParts = { chunkHashes: nar.chunkHashes, newChunks: nar.newChunks, packs: nar.packs };
      if (await this.g.meta.markStagedDurable(id, parts)) return parts;
      await discardStaged(this.g, nar); // replaced or expired meanwhile: nobody will commit it
      throw new StagingGone(id);
    }, async (err: unknown) => {
      await this.g.meta.unstageNar(id).catch(() => {}); // the failed seal discarded its packs
      throw err;
    });
    this.sealing.set(id, sealed);
    sealed.catch(() => {}).finally(() => this.sealing.delete(id));
  }

  /**
   * A staged NAR's final parts once its packs are durable, or null when it is no longer staged
   * (replaced or expired meanwhile). Another replica's seal is awaited through its record.
   */
  private async durableParts(staged: StagedNarRecord): Promise<StagedParts | null> {
    if (staged.durable) return staged.parts;
    const local = this.sealing.get(staged.id);
    if (local) {
      try {
        return await local;
      } catch (err) {
        if (err instanceof StagingGone) return null;
        throw asUploadError(err, () => quotaExceeded(this.limits.stagingQuota));
      }
    }
    // Not sealing here: another replica is syncing it, or stopped before it could (then never).
    const deadline = Math.min(Date.now() + SEAL_WAIT_MS, staged.createdAt * 1000 + 2 * SEAL_WAIT_MS);
    while (Date.now() < deadline) {
      await Bun.sleep(SEAL_POLL_MS);
      const now = await this.g.meta.findStagedNar(staged.cacheId, staged.file, nowSeconds());
      if (!now || now.id !== staged.id) return null;
      if (now.durable) return now.parts;
    }
    if (Date.now() >= staged.createdAt * 1000 + 2 * SEAL_WAIT_MS) return null;
    throw new GarretError("StorageError", `the NAR ${staged.file} is still being stored by another replica; send the narinfo again`);
  }

  /**
   * Whether `nar/<file>` is staged for this cache, or is a plain NAR (`<NarHash>.nar`, whose file
   * hash is the NAR hash) that a path of this cache already uses: HEAD answers 200 so Nix skips
   * the PUT, and the narinfo naming it is published with the stored NAR. A compressed file's name
   * is the hash of Nix's compressed bytes, which garret never keeps, so only staging answers those.
   */
  async isStaged(caller: Caller, cacheName: string, file: string): Promise<{ size: number } | null> {
    const cache = await authorize(this.g, caller, cacheName, "pull");
    const staged = await this.stagedNow(cache.id, file);
    // One still sealing elsewhere may never be (its replica stopped): Nix had better send it again.
    if (staged && (staged.durable || this.sealing.has(staged.id))) return { size: staged.narSize };
    const nar = await this.storedNar(cache, file);
    return nar ? { size: nar.narSize } : null;
  }

  /**
   * The live staged record of `file`, read again when it was read undurable and its seal is not
   * running here: that seal may have finished (record durable, then out of the map) between the
   * read and the check, which a loaded CI run caught as a 404 HEAD just after its 204 PUT.
   */
  private async stagedNow(cacheId: number, file: string): Promise<StagedNarRecord | null> {
    const staged = await this.g.meta.findStagedNar(cacheId, file, nowSeconds());
    if (!staged || staged.durable || this.sealing.has(staged.id)) return staged;
    return this.g.meta.findStagedNar(cacheId, file, nowSeconds());
  }

  /** A stored NAR of this cache named as Nix names an uncompressed one, publishable with nothing new. */
  private async storedNar(cache: CacheRecord, file: string): Promise<Publishable | null> {
    const m = /^([0-9a-df-np-sv-z]{52})\.nar$/.exec(file);
    if (!m) return null;
    let narHash: string;
    try {
      narHash = Buffer.from(decodeBase32(m[1]!)).toString("hex");
    } catch {
      return null;
    }
    const served = await this.g.meta.narToServe(cache.id, narHash);
    if (!served) return null;
    return { narHash, narSize: served.narSize, parts: { chunkHashes: served.chunks.map((c) => c.hash), newChunks: [], packs: [] } };
  }

  /** Staged NARs whose packs are still being synced here (a graceful shutdown waits for them). */
  pendingSeals(): number {
    return this.sealing.size;
  }

  /**
   * A narinfo PUT for a path the cache holds and no NAR staged: what `nix store sign --store URL`
   * sends (the narinfo it was served, plus its signature). Taken only when nothing but Sig lines
   * differ from what the path is served as; the new ones are kept as extra signatures. One under
   * the cache's own key name must be the cache's own signature: nobody else signs for the cache.
   */
  private async addSignatures(cache: CacheRecord, o: ObjectView, info: NarInfo): Promise<void> {
    const served = await servedNarInfo(this.g, cache, o);
    const changed = changedFields(info, served);
    if (changed.length > 0) {
      throw new GarretError("PathExists", `${o.storePath} is already in cache ${cache.name} and a narinfo PUT may only add signatures; it changes ${changed.join(", ")}`);
    }
    const { publicKey } = cacheKey(cache);
    const ownName = publicKey.slice(0, publicKey.indexOf(":"));
    const added = info.sigs.filter((sig) => !served.sigs.includes(sig));
    for (const sig of added) {
      if (sig.startsWith(`${ownName}:`)) throw new GarretError("InvalidSignature", `${sig.slice(0, 40)}… claims the cache's own key ${ownName} but is not its signature`);
      if (!isWellFormedSignature(sig)) throw new GarretError("InvalidSignature", `Sig ${sig.slice(0, 40)}… is not <key name>:<base64 of a 64-byte ed25519 signature>`);
    }
    if (added.length === 0) return;
    const extra = [...o.sigs, ...added];
    if (extra.length > MAX_EXTRA_SIGS) throw new GarretError("InvalidSignature", `a path keeps at most ${MAX_EXTRA_SIGS} signatures besides the cache's own`);
    // Written only over what was read: a concurrent signer's signature is never lost, and one
    // made for a NAR that a push has since replaced never lands on the new one.
    if (await this.g.meta.setExtraSigs(cache.id, o.storePathHash, { narId: o.narId, sigs: o.sigs }, extra)) return;
    const now = await this.g.meta.getObject(cache.id, o.storePathHash);
    if (!now || now.narId !== o.narId) {
      throw new GarretError("PathExists", `${o.storePath} in cache ${cache.name} was pushed again while signing; sign it again`);
    }
    return this.addSignatures(cache, now, info);
  }

  /** `PUT /<cache>/<hash>.narinfo`: validated against its staged NAR, then published. */
  async putNarInfo(caller: Caller, cacheName: string, hashPart: string, text: string, origin: PushOrigin = { client: null }): Promise<void> {
    const cache = await authorize(this.g, caller, cacheName, "push");
    if (!isValidStorePathHash(hashPart)) throw bad("InvalidStorePath", `${hashPart} is not a store path hash`);
    let info;
    try {
      info = parseNarInfo(text, cache.storeDir);
    } catch (err) {
      if (err instanceof NixFormatError) throw bad("InvalidNarInfo", err.message);
      throw err;
    }
    const base = info.storePath.slice(cache.storeDir.length + 1);
    if (!base.startsWith(`${hashPart}-`)) throw bad("InvalidStorePath", `StorePath ${info.storePath} does not match ${hashPart}.narinfo`);
    const urlFile = /^nar\/([^/]+)$/.exec(info.url)?.[1];
    const staged = urlFile ? await this.stagedNow(cache.id, urlFile) : null;
    const parts = staged && await this.durableParts(staged);
    let nar: Publishable | null = staged && parts && { narHash: staged.narHash, narSize: staged.narSize, parts, stagedId: staged.id };
    if (!nar) {
      // `nix store sign --store URL` sends back the narinfo it was served, with its Sig added.
      const existing = await this.g.meta.getObject(cache.id, hashPart);
      if (existing) return this.addSignatures(cache, existing, info);
      // A plain NAR this cache holds already, which Nix did not send again (HEAD said 200).
      nar = urlFile ? await this.storedNar(cache, urlFile) : null;
      if (!nar) throw bad("NoSuchObject", `URL ${info.url} names no NAR staged for this cache`);
    }
    const narHash = Buffer.from(parseSha256(info.narHash)).toString("hex");
    if (narHash !== nar.narHash) {
      throw new GarretError("HashMismatch", `NarHash ${info.narHash} is not the staged NAR's sha256:${formatNixBase32(Buffer.from(nar.narHash, "hex"))}`);
    }
    if (info.narSize !== nar.narSize) throw new GarretError("SizeMismatch", `NarSize ${info.narSize} is not the staged NAR's ${nar.narSize}`);
    if (info.fileHash !== undefined && info.fileHash !== `sha256:${urlFile!.split(".")[0]}`) {
      throw new GarretError("HashMismatch", `FileHash ${info.fileHash} does not match the URL ${info.url}`);
    }
    // The cache never serves a path without its closure: every reference is there already, or is the path itself.
    const others = info.references.filter((r) => r !== base).map((r) => r.slice(0, 32));
    // One query for all of them: the top of a wide closure names hundreds.
    const missing = others.length > 0 ? await this.g.meta.missingPaths(cache.id, others) : [];
    if (missing.length > 0) throw bad("InvalidNarInfo", `reference ${missing[0]} is not in cache ${cache.name}; push it first`);

    const { secret: key, publicKey } = cacheKey(cache);
    const serverSig = await signFingerprint(key, objectFingerprint(cache, {
      storePath: info.storePath, narHash: nar.narHash, narSize: nar.narSize, references: info.references,
    }));
    try {
      await this.g.meta.commitUpload({
        packs: nar.parts.packs, newChunks: nar.parts.newChunks, chunkHashes: nar.parts.chunkHashes,
        narHash: nar.narHash, narSize: nar.narSize, cache, stagedId: nar.stagedId,
        object: {
          storePathHash: hashPart, storePath: info.storePath, references: info.references,
          system: info.system ?? null, deriver: info.deriver ?? null, ca: info.ca ?? null,
          // The client's own signatures are dropped: see the README (native pushes).
          sigs: [],
          serverSig, serverSigKey: publicKey, createdBy: claimsOf(caller)?.sub ?? null,
          pushedByToken: tokenIdOf(caller), pushedFrom: origin.client,
        },
      });
      // As an uploader could tell (see dedup-view.ts): only a NAR this cache served already was not sent.
      this.g.metrics?.uploads.inc({ kind: nar.stagedId === undefined ? "Deduplicated" : "Uploaded" });
    } catch (err) {
      if (err instanceof StagingGone) {
        throw bad("NoSuchObject", `the NAR ${info.url} names expired or was sent again before this narinfo; send both again`);
      }
      // Not publishable (the cache went, or its bytes did): nobody will commit it now.
      const dropped = nar.stagedId !== undefined ? await this.g.meta.unstageNar(nar.stagedId) : null;
      if (dropped) await discardStaged(this.g, dropped.parts);
      if (err instanceof CacheChanged) throw noSuchCache();
      throw err;
    }
  }
}

/** What differs between a narinfo PUT for a stored path and what the path is served as, Sig aside. */
function changedFields(sent: NarInfo, served: NarInfo): string[] {
  const same: Record<string, boolean> = {
    StorePath: sent.storePath === served.storePath,
    URL: sent.url === served.url,
    Compression: sent.compression === served.compression,
    FileHash: sent.fileHash === undefined || sent.fileHash === served.fileHash,
    FileSize: sent.fileSize === undefined || sent.fileSize === served.fileSize,
    NarHash: sent.narHash === served.narHash,
    NarSize: sent.narSize === served.narSize,
    References: [...sent.references].sort().join(" ") === [...served.references].sort().join(" "),
    Deriver: unchanged(sent.deriver, served.deriver),
    System: unchanged(sent.system, served.system),
    CA: unchanged(sent.ca, served.ca),
  };
  return Object.keys(same).filter((k) => !same[k]);
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.length > 0) yield bytes;
}

/** The body as it streams by, fed to `hasher` on the way. */
async function* hashing(body: AsyncIterable<Uint8Array>, hasher: Bun.CryptoHasher): AsyncGenerator<Uint8Array> {
  for await (const b of body) {
    hasher.update(b);
    yield b;
  }
}

/** How long a narinfo PUT waits for another replica to finish syncing the NAR it names, and how often it looks. */
const SEAL_WAIT_MS = 30_000;
const SEAL_POLL_MS = 10;

/** Extra signatures a path may carry: `nix store sign` by a few keys, not an unbounded list. */
const MAX_EXTRA_SIGS = 16;

const unchanged = (a: string | undefined, b: string | undefined): boolean => (a ?? "") === (b ?? "");

const quotaExceeded = (quota: number): GarretError => new GarretError("StagingQuotaExceeded",
  `this NAR does not fit in the token's staging quota of ${quota} bytes; publish staged NARs with their narinfos or wait for them to expire`);

/**
 * A NAR PUT claims no size: going past the room left (decoded or plain) is the staging quota, or
 * the server's largest NAR when that is smaller (`overLimit` says which).
 */
function asUploadError(err: unknown, overLimit: () => GarretError): unknown {
  if (err instanceof DecodeError) return err.reason === "limit" ? overLimit() : new GarretError("InvalidEncoding", err.message);
  if (err instanceof UploadRejected && err.reason === "size") return overLimit();
  if (err instanceof UploadRejected) {
    const code = ({ hash: "HashMismatch", file: "HashMismatch", size: "SizeMismatch", structure: "InvalidNar" } as const)[err.reason];
    return new GarretError(code, err.message);
  }
  if (err instanceof StorageError) return new GarretError("StorageError", `storage failed, nothing was stored: ${err.message}`);
  return err;
}
