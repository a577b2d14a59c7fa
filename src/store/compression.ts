import zlib from "node:zlib";
import { pipeline, Readable, type Duplex } from "node:stream";
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

/** Content-Encodings an uploader may use for the NAR body. */
const DECODERS: Record<string, () => NodeJS.ReadWriteStream> = {
  zstd: () => zlib.createZstdDecompress(),
  br: () => zlib.createBrotliDecompress(),
  gzip: () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
};

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
  return decoded(body, make(), encoding, limit);
}

async function* decoded(
  body: AsyncIterable<Uint8Array>, decoder: NodeJS.ReadWriteStream, encoding: string, limit: number,
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
  const stream = pipeline(Readable.from(source(), { objectMode: false }), decoder as unknown as Duplex, () => {});
  let total = 0;
  try {
    // A zlib transform never yields strings: it has no encoding set.
    for await (const piece of stream as AsyncIterable<Uint8Array>) {
      total += piece.length;
      if (total > limit) throw new DecodeError("limit", `the ${encoding} body decodes to more than ${limit} bytes`);
      yield piece;
    }
  } catch (err) {
    if (err instanceof DecodeError || sourceError !== null) throw err;
    throw new DecodeError("corrupt", `the body is not valid ${encoding}: ${(err as Error).message}`);
  } finally {
    stream.destroy();
  }
}
