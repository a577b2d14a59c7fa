import { randomUUID } from "node:crypto";
import type { Storage } from "./storage.ts";
import type { MetaStore } from "../db/types.ts";

/** Where a batch put one upload's bytes: a shared pack, from `offset` on. */
export interface BatchPlacement {
  packId: number;
  packKey: string;
  /** Size of the whole shared pack, as its first committer seals it. */
  packSize: number;
  offset: number;
}

interface Waiting {
  pieces: Uint8Array[];
  bytes: number;
  resolve(p: BatchPlacement): void;
  reject(err: unknown): void;
}

/**
 * Writes the chunks of small uploads into shared packs: one storage object and one fsync (or one
 * PUT on S3) for every upload that became ready while the previous pack was being written. On
 * their own, small uploads spent most of their time in the fsync of a pack of their own.
 *
 * A lone upload is written at once, so nothing waits for company; batches form only under load
 * (uploads arriving while PARALLEL_PACKS packs are being written wait for the next one).
 * The pack is recorded pending before its first byte, like any other, and sealed by the first
 * upload that commits into it; if none does, the collector takes it as a crash leftover.
 */
export class PackBatcher {
  private queue: Waiting[] = [];
  private writers = 0;

  constructor(private readonly storage: Storage, private readonly meta: MetaStore, private readonly limit: number) {}

  /** Makes `pieces` durable, back to back, in a shared pack; resolves once they are. */
  write(pieces: Uint8Array[]): Promise<BatchPlacement> {
    return new Promise((resolve, reject) => {
      this.queue.push({ pieces, bytes: pieces.reduce((n, p) => n + p.length, 0), resolve, reject });
      if (this.writers < PARALLEL_PACKS) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writers++;
    try {
      while (this.queue.length > 0) await this.writeBatch(this.takeBatch());
    } finally {
      this.writers--;
    }
  }

  /** The waiting uploads that fit in one pack (always at least one). */
  private takeBatch(): Waiting[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || bytes + this.queue[n]!.bytes <= this.limit)) bytes += this.queue[n++]!.bytes;
    return this.queue.splice(0, n);
  }

  private async writeBatch(batch: Waiting[]): Promise<void> {
    const key = `packs/${randomUUID()}.pack`;
    try {
      const packId = await this.meta.createPendingPack(key);
      const offsets: number[] = [];
      let end = 0;
      for (const w of batch) {
        offsets.push(end);
        end += w.bytes;
      }
      // One put for the whole batch: each write of a piece used to be a thread-pool round trip,
      // and with uploads waiting on this one pack, those round trips capped the upload rate.
      const packSize = await this.storage.put(key, batch.flatMap((w) => w.pieces));
      batch.forEach((w, i) => w.resolve({ packId, packKey: key, packSize, offset: offsets[i]! }));
    } catch (err) {
      // The pending record stays for the collector: storage may be what failed.
      for (const w of batch) w.reject(err);
    }
  }
}

/**
 * Packs written at once. One: the uploads that become ready while a pack is being written and
 * fsynced all go into the next one, so batches grow with load. Two writers (one batch filling
 * while the other waits for its fsync) halved the batches and made more files: the push bench's
 * 50 small uploads at -j 8 took 0.064-0.073 s with two against 0.060-0.064 s with one, and the
 * server spent more CPU per upload, most of it creating files.
 */
const PARALLEL_PACKS = 1;

const batchers = new WeakMap<Storage, PackBatcher>();

/** The one batcher per storage backend in this process. */
export function packBatcherFor(storage: Storage, meta: MetaStore, limit: number): PackBatcher {
  let b = batchers.get(storage);
  if (!b) {
    b = new PackBatcher(storage, meta, limit);
    batchers.set(storage, b);
  }
  return b;
}
