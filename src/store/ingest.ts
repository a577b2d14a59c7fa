import { randomUUID } from "node:crypto";
import { Chunker, type ChunkerOptions } from "./chunker.ts";
import { compressChunk } from "./compression.ts";
import { packBatcherFor, type BatchPlacement, type PackBatcher } from "./pack-batcher.ts";
import type { Storage, StorageWriter } from "./storage.ts";
import type { Compression, IndexedChunk, MetaStore, NewChunk } from "../db/types.ts";
import { NarValidator } from "../nix/nar.ts";
import { NixFormatError } from "../nix/errors.ts";

export interface IngestOptions {
  compression: Compression;
  compressionLevel: number;
  chunking: ChunkerOptions;
  /** NARs smaller than this are stored as one chunk. */
  wholeNarThreshold: number;
  /** A pack is sealed and a new one started once it reaches this size. */
  packSizeLimit: number;
  /** Chunks being compressed at once; bounds memory at about this many chunks. */
  compressionWindow: number;
  /**
   * NARs up to this size keep their new chunks in memory and share packs with the small uploads
   * that finish at the same time (see PackBatcher); larger ones write packs of their own.
   */
  sharedPackBelow: number;
}

export const DEFAULT_INGEST: Omit<IngestOptions, "chunking"> = {
  compression: "zstd",
  compressionLevel: 3,
  wholeNarThreshold: 64 * 1024,
  packSizeLimit: 64 * 1024 * 1024,
  compressionWindow: 4,
  sharedPackBelow: 1024 * 1024,
};

/** Why an upload was refused: the NAR's size, hash or structure is not what was claimed. */
export class UploadRejected extends Error {
  constructor(readonly reason: "size" | "hash" | "file" | "structure", message: string) {
    super(message);
  }
}

/**
 * What an upload claims: its NAR's hash and size (Attic's upload-path), or nothing (a native PUT,
 * measured as it streams, up to `maxSize`). `check` runs once the whole body is read and before
 * anything is kept: a native PUT compares the hash of the bytes as sent with its file name there.
 */
export interface Expected {
  narHash: Uint8Array | null;
  narSize: number | null;
  maxSize: number;
  check?: () => Promise<void> | void;
  /**
   * Return once the NAR is measured, before its packs are durable (`StagedNar.durable` says when
   * they are): a native PUT's NAR is only staged, and its narinfo's commit awaits that, so the
   * fsync overlaps the client's round trip to send the narinfo.
   */
  lateSeal?: boolean;
  /**
   * The caches whose paths the uploader may read. A chunk stored already is reused only when one
   * of them uses it; any other is compressed, written and synced again like a new one, and its
   * new copy replaces the stored one as a heal's does when identical (see `replaceable`): the
   * bytes stay indexed once, and the upload costs what a fresh one does, so its duration tells
   * nothing of other tenants' caches. Absent: every stored chunk is reused.
   */
  shownIn?: number[];
}

/** A NAR whose bytes are durable in storage but not yet visible in any cache. */
export interface StagedNar {
  narHash: string; // hex
  narSize: number;
  chunkHashes: string[];
  newChunks: NewChunk[];
  packs: PackRef[];
  /** Uncompressed bytes that were already stored (globally or earlier in this upload). */
  dedupBytes: number;
  /** Compressed bytes this upload added to storage. */
  storedBytes: number;
  /**
   * Settles once `packs` are durable and `newChunks` have their final place (already, unless
   * `lateSeal`); rejects when storage failed, and then nothing of this NAR is kept.
   */
  durable: Promise<void>;
}

const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

function sha256Hex(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

/** A pack an upload wrote into; `shared` when other uploads' chunks are in it too. */
export interface PackRef {
  id: number;
  size: number;
  key: string;
  shared?: boolean;
}

/** Where the pipeline puts compressed chunks. */
interface ChunkSink {
  readonly packs: PackRef[];
  append(data: Uint8Array): Promise<{ packId: number; offset: number }>;
  /** Makes everything appended durable. */
  seal(): Promise<void>;
  /** Gives the chunks appended their final place, once sealed. */
  place(chunks: NewChunk[]): void;
  discard(): Promise<void>;
}

/** Appends compressed chunks to packs, sealing one at the size limit and starting the next. */
class PackSink implements ChunkSink {
  readonly packs: PackRef[] = [];
  private writer: StorageWriter | null = null;
  private current: { id: number; key: string } | null = null;

  constructor(private readonly storage: Storage, private readonly meta: MetaStore, private readonly limit: number) {}

  async append(data: Uint8Array): Promise<{ packId: number; offset: number }> {
    if (!this.writer) await this.open();
    const offset = this.writer!.bytesWritten;
    await this.writer!.write(data);
    const packId = this.current!.id;
    if (this.writer!.bytesWritten >= this.limit) await this.seal();
    return { packId, offset };
  }

  private async open(): Promise<void> {
    const key = `packs/${randomUUID()}.pack`;
    // Recorded before the first byte, so a crash leaves a pending pack for the collector to find.
    const id = await this.meta.createPendingPack(key);
    this.current = { id, key };
    this.writer = await this.storage.createWriter(key);
  }

  async seal(): Promise<void> {
    if (!this.writer || !this.current) return;
    await this.writer.commit();
    this.packs.push({ ...this.current, size: this.writer.bytesWritten });
    this.writer = null;
    this.current = null;
  }

  place(): void {} // appended chunks are in place already

  /** Undoes everything: deletes sealed packs, drops the open one, forgets their records. */
  async discard(): Promise<void> {
    if (this.writer) await this.writer.abort().catch(() => {});
    const all = [...this.packs, ...(this.current ? [{ ...this.current, size: 0 }] : [])];
    await forgetPacks(this.storage, this.meta, all);
    this.writer = null;
    this.current = null;
  }
}

/** Keeps a small upload's compressed chunks in memory and hands them to the PackBatcher at seal. */
class SharedPackSink implements ChunkSink {
  readonly packs: PackRef[] = [];
  private pieces: Uint8Array[] = [];
  private size = 0;
  private placed: BatchPlacement | null = null;

  constructor(private readonly batcher: PackBatcher) {}

  async append(data: Uint8Array): Promise<{ packId: number; offset: number }> {
    this.pieces.push(data);
    this.size += data.length;
    return { packId: 0, offset: this.size - data.length }; // made final by place()
  }

  async seal(): Promise<void> {
    if (this.pieces.length === 0) return;
    this.placed = await this.batcher.write(this.pieces);
    this.pieces = [];
    this.packs.push({ id: this.placed.packId, size: this.placed.packSize, key: this.placed.packKey, shared: true });
  }

  place(chunks: NewChunk[]): void {
    if (!this.placed) return;
    for (const c of chunks) {
      c.packId = this.placed.packId;
      c.offset += this.placed.offset;
    }
  }

  /** Nothing of a shared pack is deleted here: other uploads may commit into it. */
  async discard(): Promise<void> {
    this.pieces = [];
  }
}

/**
 * Whether the pack an indexed chunk points at still holds its bytes. One size lookup per pack per
 * upload: cheap, and it lets a re-upload heal chunks whose pack was lost instead of trusting the
 * index. (Bytes damaged in place are found by fsck, which marks chunks damaged.)
 */
class PackHealth {
  private readonly sizes = new Map<string, Promise<number | null>>();

  constructor(private readonly storage: Storage) {}

  async holds(c: IndexedChunk): Promise<boolean> {
    let size = this.sizes.get(c.packKey);
    if (!size) {
      size = this.storage.size(c.packKey);
      this.sizes.set(c.packKey, size);
    }
    const s = await size;
    return s !== null && s >= c.offset + c.storedSize;
  }
}

/**
 * The one upload pipeline: body → NAR sha256 + size + structure check → chunker → per chunk:
 * sha256, skip if stored, else compress (in a small window of parallel jobs) and append to this
 * upload's pack. Memory holds at most `compressionWindow` chunks plus one read buffer; awaiting
 * each storage write before reading on gives backpressure all the way to the client's socket.
 *
 * Nothing becomes visible here: the caller commits the returned StagedNar in one metadata
 * transaction, or calls `discardStaged` to delete what was written.
 */
export async function ingestNar(
  deps: { storage: Storage; meta: MetaStore },
  body: AsyncIterable<Uint8Array>,
  expected: Expected,
  opts: IngestOptions,
): Promise<StagedNar> {
  if (expected.narSize !== null) return ingestSized(deps, body, expected, opts);
  // Measuring (nothing claimed, a native PUT): whatever the NAR hashes to is what it is. A small
  // one is read whole first and then takes the path of a claimed size, so it shares packs (one
  // fsync for the uploads finishing together, not a pack file and a pack record each) and is cut
  // into the same chunks as the same NAR sent through upload-path. A larger one streams on.
  const head = await readHead(body, Math.min(opts.sharedPackBelow, expected.maxSize));
  if (head.rest === null) return ingestSized(deps, once(head.pieces), { ...expected, narSize: head.size }, opts);
  return ingestSized(deps, head.rest, expected, opts);
}

/** The first pieces of a body, up to `max` bytes: all of it (`rest` null), or those and a body that replays them. */
async function readHead(body: AsyncIterable<Uint8Array>, max: number): Promise<{ pieces: Uint8Array[]; size: number; rest: AsyncIterable<Uint8Array> | null }> {
  const it = body[Symbol.asyncIterator]();
  const pieces: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) return { pieces, size, rest: null };
    pieces.push(r.value);
    size += r.value.length;
    if (size > max) break;
  }
  async function* rest(): AsyncGenerator<Uint8Array> {
    yield* pieces;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { pieces, size, rest: rest() };
}

async function* once(pieces: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* pieces;
}

async function ingestSized(
  deps: { storage: Storage; meta: MetaStore },
  body: AsyncIterable<Uint8Array>,
  expected: Expected,
  opts: IngestOptions,
): Promise<StagedNar> {
  // Still measuring here (a large native PUT): chunked and written to packs of its own.
  const limit = expected.narSize ?? expected.maxSize;
  const sink: ChunkSink = expected.narSize !== null && expected.narSize <= opts.sharedPackBelow
    ? new SharedPackSink(packBatcherFor(deps.storage, deps.meta, opts.packSizeLimit))
    : new PackSink(deps.storage, deps.meta, opts.packSizeLimit);
  const narHasher = new Bun.CryptoHasher("sha256");
  const validator = new NarValidator();
  const whole = expected.narSize !== null && expected.narSize < opts.wholeNarThreshold;
  const chunker = whole ? null : new Chunker(opts.chunking);
  // A whole NAR is kept as the one piece it usually arrives in (see uploadBody), or assembled.
  let wholePieces: Uint8Array[] | null = whole ? [] : null;

  const chunkHashes: string[] = [];
  const newChunks: NewChunk[] = [];
  const seenInUpload = new Set<string>();
  // `replaces`: the stored copy of a chunk the uploader may not know of (see Expected.shownIn).
  const inflight: { hash: string; size: number; heals: boolean; replaces?: IndexedChunk; compressed: Promise<Uint8Array> }[] = [];
  let narSize = 0;
  let dedupBytes = 0;
  let storedBytes = 0;
  let narHashHex = "";

  const flushOne = async (): Promise<void> => {
    const job = inflight.shift()!;
    const data = await job.compressed;
    const { packId, offset } = await sink.append(data);
    const heals = job.replaces ? await replaceable(job.replaces, data.length) : job.heals;
    newChunks.push({
      hash: job.hash, size: job.size, compression: opts.compression, packId, offset, storedSize: data.length, heals,
    });
    storedBytes += data.length;
  };

  const packHealth = new PackHealth(deps.storage);
  /**
   * Whether a fresh copy of a chunk the uploader may not know of takes the stored one's place.
   * Every NAR using the chunk declares its stored size and compression (narinfo FileSize, the
   * served stream), so only an identical copy may (the same settings give the same bytes). One
   * made under other settings stays unindexed, for the collector, unless the stored copy's pack
   * lost it: then it heals, as it always did.
   */
  const replaceable = async (stored: IndexedChunk, storedSize: number): Promise<boolean> =>
    (stored.compression === opts.compression && stored.storedSize === storedSize) || !(await packHealth.holds(stored));
  // `owned`: the chunk's bytes are this upload's to keep (not a chunker view), and `knownHash` its
  // sha256 when already computed (a whole NAR's is the NAR hash, just verified).
  // `known`: the index's answer for this chunk, looked up with the other chunks of its piece.
  const handleChunk = async (chunk: Uint8Array, owned = false, knownHash?: string, known?: Map<string, IndexedChunk>): Promise<void> => {
    const hash = knownHash ?? sha256Hex(chunk);
    chunkHashes.push(hash);
    if (seenInUpload.has(hash)) {
      dedupBytes += chunk.length;
      return;
    }
    seenInUpload.add(hash);
    const indexed = (known ?? await deps.meta.findChunks([hash], expected.shownIn)).get(hash) ?? null;
    // One the uploader may not know of is stored again without looking at its pack, as a new one is.
    if (indexed && indexed.shown !== false && (await packHealth.holds(indexed))) {
      dedupBytes += chunk.length;
      return;
    }
    // The chunker's view is only valid until its next call, and compression runs off-thread.
    const copy = owned ? chunk : chunk.slice();
    inflight.push({
      hash, size: copy.length, heals: indexed !== null, replaces: indexed?.shown === false ? indexed : undefined,
      compressed: compressChunk(copy, opts.compression, opts.compressionLevel, whole),
    });
    if (inflight.length >= opts.compressionWindow) await flushOne();
  };

  // The chunks one piece of the body completes are looked up in one query, not one each.
  const handleChunks = async (chunks: Uint8Array[]): Promise<void> => {
    if (chunks.length === 0) return;
    const hashes = chunks.map((c) => sha256Hex(c));
    const known = await deps.meta.findChunks([...new Set(hashes.filter((h) => !seenInUpload.has(h)))], expected.shownIn);
    for (let i = 0; i < chunks.length; i++) await handleChunk(chunks[i]!, false, hashes[i], known);
  };

  try {
    for await (const buf of body) {
      if (narSize + buf.length > limit) {
        throw new UploadRejected("size", expected.narSize === null
          ? `NAR is larger than the ${limit} bytes allowed`
          : `NAR is larger than the claimed nar_size ${expected.narSize}`);
      }
      validator.push(buf);
      narHasher.update(buf);
      wholePieces?.push(buf);
      narSize += buf.length;
      if (chunker) await handleChunks(chunker.push(buf));
    }
    if (expected.narSize !== null && narSize !== expected.narSize) {
      throw new UploadRejected("size", `NAR is ${narSize} bytes but nar_size claims ${expected.narSize}`);
    }
    validator.finish();
    const actual = narHasher.digest() as Uint8Array;
    if (expected.narHash && !Buffer.from(actual).equals(Buffer.from(expected.narHash))) {
      throw new UploadRejected("hash", `NAR hash mismatch: claimed sha256:${toHex(expected.narHash)}, got sha256:${toHex(actual)}`);
    }
    narHashHex = toHex(actual);
    if (expected.check) await expected.check();
    if (chunker) await handleChunks(chunker.finish());
    if (wholePieces && narSize > 0) {
      // The body's pieces are fresh buffers, never reused by the reader: one is kept as it is.
      const nar = wholePieces.length === 1 ? wholePieces[0]! : Buffer.concat(wholePieces, narSize);
      wholePieces = null;
      await handleChunk(nar, true, toHex(actual));
    }
    while (inflight.length > 0) await flushOne();
  } catch (err) {
    await Promise.allSettled(inflight.map((j) => j.compressed));
    await sink.discard();
    if (err instanceof NixFormatError) throw new UploadRejected("structure", `invalid NAR: ${(err as Error).message}`);
    throw err;
  }

  const seal = async (): Promise<void> => {
    try {
      await sink.seal();
      sink.place(newChunks);
    } catch (err) {
      await sink.discard();
      throw err;
    }
  };
  let durable: Promise<void>;
  if (expected.lateSeal) {
    // Started on the next turn: the pack record and the file's writes run on this thread, and
    // the PUT's answer should go out before them, not after.
    durable = new Promise<void>((resolve) => setImmediate(resolve)).then(seal);
    durable.catch(() => {}); // whoever commits awaits it and sees the failure; nobody else must
  } else {
    await seal();
    durable = Promise.resolve();
  }
  return {
    narHash: narHashHex, narSize, chunkHashes, newChunks, packs: sink.packs, dedupBytes, storedBytes, durable,
  };
}

/**
 * Deletes packs that will never be committed, then their records. When storage cannot delete
 * (it may be the very thing that failed), the record stays 'pending' for the collector.
 */
async function forgetPacks(storage: Storage, meta: MetaStore, packs: { id: number; key: string }[]): Promise<void> {
  for (const p of packs) {
    try {
      await storage.delete(p.key);
    } catch {
      continue;
    }
    await meta.forgetPack(p.id);
  }
}

/**
 * Deletes the packs of a staged NAR that will not be committed. A shared pack stays: other
 * uploads may commit into it, and if none does the collector takes it.
 */
export async function discardStaged(deps: { storage: Storage; meta: MetaStore }, staged: { packs: PackRef[]; durable?: Promise<void> }): Promise<void> {
  // A seal still running would leave its pack behind; a failed one has discarded its packs itself.
  if (staged.durable && !(await staged.durable.then(() => true, () => false))) return;
  await forgetPacks(deps.storage, deps.meta, staged.packs.filter((p) => !p.shared));
}
