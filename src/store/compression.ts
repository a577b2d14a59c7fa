import zlib from "node:zlib";
import { PassThrough, pipeline, Readable, type Duplex } from "node:stream";
import { XzReadableStream } from "xz-decompress";
import unbzip2 from "unbzip2-stream";
import type { Compression } from "../db/types.ts";

export const COMPRESSIONS: readonly Compression[] = ["zstd", "br", "none"];

/**
 * What a NAR stored with these chunk compressions is served as. Independent zstd frames (and
 * plain bytes) concatenate into one valid stream, so those are sent as stored; brotli streams do
 * not, and neither does a NAR mixing compressions, so those are decompressed and sent plain.
 */
export function servedCompression(stored: Compression | "mixed"): Compression {
  return stored === "zstd" || stored === "none" ? stored : "none";
}

/** File extension Nix clients see for a NAR stored with this compression. */
export function narExtension(c: Compression): string {
  return { none: ".nar", zstd: ".nar.zst", xz: ".nar.xz", br: ".nar.br" }[c];
}

/**
 * Compresses one chunk on its own. zstd runs on Bun's thread pool, so that compression overlaps
 * with hashing and chunking on the main thread, unless `inline`: a small upload's only chunk,
 * whose compression (tens of microseconds) waited ten times as long when queued on the pool
 * behind pack fsyncs (a thread per CPU, each held for a millisecond), which capped the rate of
 * small uploads under load. Each chunk becomes one complete frame, so the chunks of a NAR
 * concatenated are a valid zstd stream.
 */
export async function compressChunk(data: Uint8Array, c: Compression, level: number, inline = false): Promise<Uint8Array> {
  switch (c) {
    case "none":
      return data;
    case "zstd":
      return inline ? Bun.zstdCompressSync(data, { level }) : Bun.zstdCompress(data, { level });
    case "br":
      return new Promise((resolve, reject) =>
        zlib.brotliCompress(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } },
          (err, out) => (err ? reject(err) : resolve(out))));
    case "xz":
      throw new Error("xz compression is not supported yet");
  }
}

export function decompressChunk(data: Uint8Array, c: Compression): Uint8Array {
  switch (c) {
    case "none":
      return data;
    case "zstd":
      return zlib.zstdDecompressSync(data);
    case "br":
      return zlib.brotliDecompressSync(data);
    case "xz":
      throw new Error("xz compression is not supported yet");
  }
}

/** A running decoder: its output, and how to stop it early (a bomb, a failed upload). */
interface Decoding {
  output: AsyncIterable<Uint8Array>;
  stop(): void;
}

/** Node-style transform (zlib, unbzip2-stream) fed from the body; errors of either end it. */
function nodeDecoder(make: () => NodeJS.ReadWriteStream) {
  return (source: AsyncIterable<Uint8Array>): Decoding => {
    const stream = pipeline(Readable.from(source, { objectMode: false }), make() as unknown as Duplex, () => {});
    // A zlib transform never yields strings: it has no encoding set.
    return { output: stream as AsyncIterable<Uint8Array>, stop: () => stream.destroy() };
  };
}

/**
 * xz: XZ Embedded compiled to WebAssembly (xz-decompress, from HTTP Toolkit): a streaming
 * decoder with a fixed-size window, no native addon to build, where the pure-JS LZMA ports buffer
 * the whole output and liblzma bindings need a compiled module per platform.
 */
function xzDecoder(source: AsyncIterable<Uint8Array>): Decoding {
  // Bun has ReadableStream.from (its type declarations lag behind).
  const from = (ReadableStream as unknown as { from(it: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> }).from;
  const stream = new XzReadableStream(from.call(ReadableStream, source));
  const reader = stream.getReader();
  async function* output(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  }
  return { output: output(), stop: () => void reader.cancel().catch(() => {}) };
}

/** unbzip2-stream is an old-style `through` stream: piped by hand, its errors passed on. */
function bzip2Decoder(source: AsyncIterable<Uint8Array>): Decoding {
  const input = Readable.from(source, { objectMode: false });
  const bz = unbzip2();
  const out = new PassThrough();
  input.on("error", (err) => out.destroy(err));
  bz.on("error", (err: Error) => out.destroy(err));
  input.pipe(bz).pipe(out);
  return { output: out, stop: () => { out.destroy(); bz.destroy(); input.destroy(); } };
}

/**
 * Decoders for an uploader's Content-Encoding, and for the compressions Nix writes NARs in.
 * bzip2 is unbzip2-stream: pure JS, streaming block by block (at most one 900 kB block held).
 */
const DECODERS: Record<string, (source: AsyncIterable<Uint8Array>) => Decoding> = {
  zstd: nodeDecoder(() => zlib.createZstdDecompress()),
  br: nodeDecoder(() => zlib.createBrotliDecompress()),
  gzip: nodeDecoder(() => zlib.createGunzip()),
  deflate: nodeDecoder(() => zlib.createInflate()),
  xz: xzDecoder,
  bzip2: bzip2Decoder,
};

/** Encodings node:zlib decodes in one call, with a cap on the output. */
const WHOLE_DECODERS: Record<string, (buf: Uint8Array, opts: { maxOutputLength: number }) => Uint8Array> = {
  zstd: (b, o) => zlib.zstdDecompressSync(b, o),
  br: (b, o) => zlib.brotliDecompressSync(b, o),
  gzip: (b, o) => zlib.gunzipSync(b, o),
  deflate: (b, o) => zlib.inflateSync(b, o),
};

/**
 * Decodes a small body already in memory in one call: its decoded bytes, or null when they would
 * be more than `max` (or the encoding has no one-call decoder here), and the caller streams it
 * through decodeContent instead, with its own limit. A 16 KiB NAR took 1-10 ms through a zlib
 * stream (thread-pool hops per piece, under load) and 20 us this way; `max` keeps the work of a
 * bomb to that many bytes.
 */
export function decodeWhole(body: Uint8Array, encoding: string, max: number): Uint8Array | null {
  if (encoding === "" || encoding === "identity") return body.length <= max ? body : null;
  if (encoding === "zstd") {
    const bound = zstdDecodedBound(body);
    // Bun's own one-call decoder has no output cap: only when the frames' block headers prove
    // the output fits. It skips node:zlib's stream object per call, a tenth of a small NAR PUT.
    if (bound !== null && bound <= max) {
      let out: Uint8Array;
      try {
        out = Bun.zstdDecompressSync(body);
      } catch (err) {
        throw new DecodeError("corrupt", `the body is not valid zstd: ${err instanceof Error ? err.message : String(err)}`);
      }
      return out.length <= max ? out : null;
    }
  }
  const decode = WHOLE_DECODERS[encoding];
  if (!decode) return null;
  try {
    return decode(body, { maxOutputLength: Math.max(1, max) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") return null;
    throw new DecodeError("corrupt", `the body is not valid ${encoding}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const ZSTD_MAGIC = 0xfd2fb528;
/** A compressed block decodes to at most this (zstd's Block_Maximum_Size, whatever the window). */
const ZSTD_BLOCK_MAX = 128 * 1024;

/**
 * An upper bound of what a zstd stream (frames, skippable frames between them) decodes to, from
 * its frame and block headers alone (RFC 8878): raw and RLE blocks state their size, a compressed
 * one is at most 128 KiB. Null when the headers do not parse as complete frames (a truncated or
 * invalid body, or a dictionary): then it is not decoded this way.
 */
export function zstdDecodedBound(b: Uint8Array): number | null {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 0;
  let bound = 0;
  while (at < b.length) {
    if (at + 4 > b.length) return null;
    const magic = view.getUint32(at, true);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      if (at + 8 > b.length) return null;
      at += 8 + view.getUint32(at + 4, true);
      if (at > b.length) return null;
      continue;
    }
    if (magic !== ZSTD_MAGIC || at + 5 > b.length) return null;
    const fhd = b[at + 4]!;
    if (fhd & 0x08 || fhd & 0x03) return null; // reserved bit; a dictionary id
    const singleSegment = (fhd & 0x20) !== 0;
    const fcsFlag = fhd >> 6;
    const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
    at += 5 + (singleSegment ? 0 : 1) + fcsBytes;
    for (let last = false; !last;) {
      if (at + 3 > b.length) return null;
      const header = b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
      last = (header & 1) === 1;
      const type = (header >> 1) & 3;
      const size = header >>> 3;
      at += 3;
      if (type === 0) { bound += size; at += size; }
      else if (type === 1) { bound += size; at += 1; }
      else if (type === 2) { bound += ZSTD_BLOCK_MAX; at += size; }
      else return null;
      if (at > b.length) return null;
    }
    if (fhd & 0x04) at += 4; // content checksum
    if (at > b.length) return null;
  }
  return bound;
}

export function isSupportedContentEncoding(encoding: string): boolean {
  return encoding === "" || encoding === "identity" || encoding in DECODERS;
}

/**
 * Why an encoded body could not be decoded: its bytes are not a valid stream of that encoding
 * ("corrupt"), or it decodes to more than the caller allows ("limit"). Both are the sender's fault.
 */
export class DecodeError extends Error {
  constructor(readonly reason: "corrupt" | "limit", message: string) {
    super(message);
  }
}

/**
 * Streams a body through the decoder its Content-Encoding names, yielding at most `limit` decoded
 * bytes: one more and it stops with DecodeError("limit") and destroys the decoder, so a small
 * body that expands to gigabytes (a decompression bomb) costs about `limit` bytes of work. Node's
 * zlib decodes a whole input piece per write regardless of backpressure, but yields between output
 * pieces, which is where the decoder is stopped.
 */
export function decodeContent(body: AsyncIterable<Uint8Array>, encoding: string, limit = Infinity): AsyncIterable<Uint8Array> {
  if (encoding === "" || encoding === "identity") return body;
  const make = DECODERS[encoding];
  if (!make) throw new Error(`unsupported Content-Encoding ${encoding}`);
  return decoded(body, make, encoding, limit);
}

async function* decoded(
  body: AsyncIterable<Uint8Array>, open: (source: AsyncIterable<Uint8Array>) => Decoding, encoding: string, limit: number,
): AsyncGenerator<Uint8Array> {
  // An error of the body itself (the client went away) is not a corrupt encoding: kept apart.
  let sourceError: unknown = null;
  async function* source(): AsyncGenerator<Uint8Array> {
    try {
      yield* body;
    } catch (err) {
      sourceError = err;
      throw err;
    }
  }
  const decoding = open(source());
  let total = 0;
  try {
    for await (const piece of decoding.output) {
      total += piece.length;
      if (total > limit) throw new DecodeError("limit", `the ${encoding} body decodes to more than ${limit} bytes`);
      yield piece;
    }
  } catch (err) {
    if (err instanceof DecodeError || sourceError !== null) throw err;
    throw new DecodeError("corrupt", `the body is not valid ${encoding}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    decoding.stop();
  }
}
