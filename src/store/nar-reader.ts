import type { ChunkLocation, Compression } from "../db/types.ts";
import { decompressChunk } from "./compression.ts";
import type { Storage } from "./storage.ts";

/** One ranged read: neighbouring chunks of the same pack, fetched together. */
interface Run {
  packKey: string;
  offset: number;
  length: number;
  chunks: ChunkLocation[];
}

export interface NarReadOptions {
  /** Upper bound of one coalesced read, which also bounds memory per prefetched run. */
  maxRunBytes: number;
  /** Runs fetched ahead of the one being sent. */
  prefetch: number;
}

export const DEFAULT_NAR_READ: NarReadOptions = { maxRunBytes: 4 * 1024 * 1024, prefetch: 8 };

/** Groups chunks that sit back to back in one pack into single reads. */
export function planRuns(chunks: ChunkLocation[], maxRunBytes: number): Run[] {
  const runs: Run[] = [];
  for (const c of chunks) {
    const last = runs[runs.length - 1];
    if (last && last.packKey === c.packKey && last.offset + last.length === c.offset
      && last.length + c.storedSize <= maxRunBytes) {
      last.length += c.storedSize;
      last.chunks.push(c);
    } else {
      runs.push({ packKey: c.packKey, offset: c.offset, length: c.storedSize, chunks: [c] });
    }
  }
  return runs;
}

export interface NarBody {
  /** What the client receives: the stored frames as they are, or plain NAR bytes when mixed. */
  compression: Compression;
  size: number;
  stream: ReadableStream<Uint8Array>;
}

/**
 * Streams a NAR from its chunks. Stored chunks are sent as they are when they share one
 * compression (concatenated zstd frames are one valid zstd stream); a NAR whose chunks were stored
 * with different compressions is decompressed and sent plain. The first read happens before this
 * returns, so a missing pack becomes an error before any header is sent; a later failure aborts
 * the stream, which with Content-Length set makes the client see a truncated, failed transfer.
 */
export async function openNar(
  storage: Storage, chunks: ChunkLocation[], stored: Compression | "mixed", opts: NarReadOptions = DEFAULT_NAR_READ,
): Promise<NarBody> {
  const plain = stored === "mixed";
  const runs = planRuns(chunks, opts.maxRunBytes);
  const size = plain ? chunks.reduce((n, c) => n + c.size, 0) : chunks.reduce((n, c) => n + c.storedSize, 0);

  const fetchRun = async (run: Run): Promise<Uint8Array> => {
    const bytes = await storage.read(run.packKey, { offset: run.offset, length: run.length });
    if (bytes.length !== run.length) throw new Error(`pack ${run.packKey} returned a short read`);
    if (!plain) return bytes;
    const parts = run.chunks.map((c) => {
      const start = c.offset - run.offset;
      return decompressChunk(bytes.subarray(start, start + c.storedSize), c.compression);
    });
    return Buffer.concat(parts);
  };

  let next = 0;
  const ahead: Promise<Uint8Array>[] = [];
  const fill = (): void => {
    while (ahead.length < opts.prefetch && next < runs.length) {
      const p = fetchRun(runs[next++]!);
      p.catch(() => {}); // observed when its turn comes; avoid an unhandled rejection meanwhile
      ahead.push(p);
    }
  };
  fill();
  const first = ahead.length > 0 ? await ahead[0] : null;

  let sentFirst = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (ahead.length === 0) return controller.close();
      const p = ahead.shift()!;
      const data = sentFirst ? await p : first!;
      sentFirst = true;
      fill();
      controller.enqueue(data);
      if (ahead.length === 0) controller.close();
    },
    cancel() {
      ahead.length = 0;
      next = runs.length;
    },
  }, { highWaterMark: 0 });
  return { compression: plain ? "none" : stored, size, stream };
}
