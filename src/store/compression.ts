import zlib from "node:zlib";
import { Readable } from "node:stream";
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

/** Streams a body through the decoder its Content-Encoding names. */
export function decodeContent(body: AsyncIterable<Uint8Array>, encoding: string): AsyncIterable<Uint8Array> {
  if (encoding === "" || encoding === "identity") return body;
  const make = DECODERS[encoding];
  if (!make) throw new Error(`unsupported Content-Encoding ${encoding}`);
  // A zlib transform never yields strings: it has no encoding set.
  return Readable.from(body, { objectMode: false }).pipe(make()) as AsyncIterable<Uint8Array>;
}
