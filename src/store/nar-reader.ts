import type { ChunkLocation, Compression } from "../db/types.ts";
import { decompressChunk, servedCompression } from "./compression.ts";
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

/**
 * Where a NAR sits when its stored chunks lie back to back in one pack: then it is one byte range
 * of one object and can be served like a static file. Null for any other layout.
 */
export function contiguousRange(chunks: ChunkLocation[]): { packKey: string; offset: number; length: number; packSize: number } | null {
  if (chunks.length === 0) return null;
  const first = chunks[0]!;
  let end = first.offset;
  for (const c of chunks) {
    if (c.packKey !== first.packKey || c.offset !== end) return null;
    end += c.storedSize;
  }
  return { packKey: first.packKey, offset: first.offset, length: end - first.offset, packSize: first.packSize };
}

/** An inclusive byte range of the body the client receives. */
export interface BodyRange {
  start: number;
  end: number;
}

export interface NarBody {
  /** What the client receives: the stored frames as they are, or plain NAR bytes when mixed. */
  compression: Compression;
  /** Length of the whole body (not of the range). */
  size: number;
  range: BodyRange | null;
  stream: ReadableStream<Uint8Array>;
}

/**
 * Streams a NAR (or a byte range of it) from its chunks: as stored when the chunks concatenate
 * into one valid stream, else decompressed and sent plain (see servedCompression). The first read
 * happens before this returns, so a missing pack becomes an error before any header is sent; a
 * later failure errors the stream, and the server drops the connection before the final chunk of
 * its chunked encoding (Bun sends streams chunked), so the client sees a failed, truncated
 * transfer rather than a short 200.
 */
export async function openNar(
  storage: Storage, chunks: ChunkLocation[], stored: Compression | "mixed",
  range: BodyRange | null = null, opts: NarReadOptions = DEFAULT_NAR_READ,
): Promise<NarBody> {
  const served = servedCompression(stored);
  const plain = served !== stored;
  const outLen = (c: ChunkLocation): number => (plain ? c.size : c.storedSize);
  const size = chunks.reduce((n, c) => n + outLen(c), 0);

  // Keep only the chunks overlapping the range, and note how much to trim at both ends.
  let selected = chunks;
  let skipHead = 0;
  let remaining = size;
  if (range) {
    selected = [];
    let pos = 0;
    for (const c of chunks) {
      const len = outLen(c);
      if (pos + len > range.start && pos <= range.end) {
        if (selected.length === 0) skipHead = range.start - pos;
        selected.push(c);
      }
      pos += len;
    }
    remaining = range.end - range.start + 1;
  }
  const runs = planRuns(selected, opts.maxRunBytes);

  const fetchRun = async (run: Run): Promise<Uint8Array> => {
    const bytes = await storage.read(run.packKey, { offset: run.offset, length: run.length });
    if (bytes.length !== run.length) throw new Error(`pack ${run.packKey} returned a short read`);
    if (!plain) return bytes;
    return Buffer.concat(run.chunks.map((c) => {
      const start = c.offset - run.offset;
      return decompressChunk(bytes.subarray(start, start + c.storedSize), c.compression);
    }));
  };

  let next = 0;
  const ahead: Promise<Uint8Array>[] = [];
  const fill = (): void => {
    while (ahead.length < opts.prefetch && next < runs.length) {
      const p = fetchRun(runs[next++]!);
      p.catch(() => {}); // observed when its turn comes; avoids an unhandled rejection meanwhile
      ahead.push(p);
    }
  };
  fill();
  if (ahead.length > 0) await ahead[0];

  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const p = ahead.shift();
      if (!p || remaining <= 0) return controller.close();
      let data = await p;
      fill();
      if (skipHead > 0) {
        data = data.subarray(skipHead);
        skipHead = 0;
      }
      if (data.length > remaining) data = data.subarray(0, remaining);
      remaining -= data.length;
      controller.enqueue(data);
      if (remaining <= 0 || (ahead.length === 0 && next >= runs.length)) controller.close();
    },
    cancel() {
      ahead.length = 0;
      next = runs.length;
    },
  }, { highWaterMark: 0 });
  return { compression: served, size, range, stream };
}

/** Parses a single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; null when absent or unsatisfiable. */
export function parseRange(header: string | null, size: number): BodyRange | null | "invalid" {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return "invalid";
  let start: number;
  let end: number;
  if (m[1] === "") {
    const n = Number(m[2]);
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return "invalid";
  return { start, end };
}
