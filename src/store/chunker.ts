/**
 * FastCDC content-defined chunking (Xia et al., "The Design of Fast
 * Content-Defined Chunking for Data Deduplication Based Storage Systems",
 * IEEE TPDS 2020), shaped like the "v2020" chunker of the fastcdc-rs crate v3
 * that Attic uses:
 *
 *  - Gear rolling hash: h = (h << 1) + GEAR[byte]. With a 32-bit hash every
 *    bit of h depends on at most the last 32 bytes, so this is a rolling hash
 *    over a 32-byte window without ever subtracting the outgoing byte.
 *  - Sub-minimum skipping: the first `minSize` bytes of a chunk are never
 *    hashed; hashing starts from h = 0 at offset `minSize` of each chunk.
 *  - Normalized chunking, level 2: before offset `avgSize` a cut needs
 *    (h & maskS) == 0 where maskS has log2(avg)+2 one bits (harder), from
 *    `avgSize` on it needs (h & maskL) == 0 with log2(avg)-2 one bits (easier).
 *    This squeezes the chunk size distribution around `avgSize`.
 *  - "Rolling two bytes each time": the loop consumes bytes in pairs using a
 *    second table GEAR_LS = GEAR << 1, so one shift serves two bytes.
 *
 * Cut convention (same as the paper and fastcdc-rs): if the hash matches
 * after consuming the byte at chunk offset i, the chunk is bytes [0, i) and
 * byte i starts the next chunk. So chunks are in [minSize, maxSize].
 *
 * Deliberate differences from fastcdc-rs (so our cut points are NOT
 * byte-compatible with Attic's; they need not be, chunks are only compared
 * with chunks made by this code):
 *  - a 32-bit hash (JS has no cheap 64-bit integers; BigInt is far too slow),
 *    with our own gear table and mask layout, see below;
 *  - pure streaming semantics: the input's end never changes where cuts are
 *    made (fastcdc-rs switches to maskS for the whole tail when fewer than
 *    avgSize bytes remain); the bytes after the last cut form the last chunk.
 *
 * Cut points are a pure function of the content: pushing the same bytes in
 * any split gives the same chunks (the scan resumes with the saved hash).
 */

export interface ChunkerOptions {
  minSize: number;
  avgSize: number;
  maxSize: number;
}

export const DEFAULT_CHUNKING: ChunkerOptions = {
  minSize: 16 * 1024,
  avgSize: 64 * 1024,
  maxSize: 256 * 1024,
};

/** Smallest accepted average: below it mask_l would have fewer than 4 bits. */
export const MIN_AVG_SIZE = 64;
/** avg <= 2^28 keeps maskS (log2(avg)+2 ones) within the 31 usable hash bits. */
export const MAX_AVG_SIZE = 1 << 28;
/** The carry buffers are 2 * maxSize bytes; keep that a sane allocation. */
export const MAX_MAX_SIZE = 1 << 30;

// ---------------------------------------------------------------------------
// Gear table.
//
// GEAR[i] for i = 0..255 is the i-th output of a counter-based 32-bit mixer:
//   s_i = 0x67617272 ("garr") + (i + 1) * 0x9e3779b9   (mod 2^32)
//   z = s_i; z ^= z >>> 16; z *= 0x21f0aaad; z ^= z >>> 15; z *= 0x735a2d97;
//   z ^= z >>> 15                                      (all mod 2^32)
// (the two-round integer hash found by Chris Wellons' "hash-prospector").
// CHANGING THIS TABLE OR THE MASKS CHANGES EVERY CUT POINT and thus destroys
// deduplication against already stored chunks; test/store/chunker.test.ts
// pins its digest.
// ---------------------------------------------------------------------------

const GEAR_SEED = 0x67617272;

function generateGear(): Uint32Array {
  const table = new Uint32Array(256);
  let s = GEAR_SEED;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z ^= z >>> 16;
    z = Math.imul(z, 0x21f0aaad);
    z ^= z >>> 15;
    z = Math.imul(z, 0x735a2d97);
    z ^= z >>> 15;
    table[i] = z >>> 0;
  }
  return table;
}

/** The gear table as unsigned values (documentation, tests, ports). */
export const GEAR: Uint32Array = generateGear();

// The hot loop reads the tables through Int32Array views: JavaScriptCore and
// V8 keep int32 values in registers, whereas a Uint32Array element >= 2^31
// does not fit an int32 and gets boxed into a double, which is much slower.
const GEAR_I32 = new Int32Array(GEAR.buffer);
const GEAR_LS_I32 = new Int32Array(256);
for (let i = 0; i < 256; i++) GEAR_LS_I32[i] = GEAR_I32[i] << 1;

// ---------------------------------------------------------------------------
// Masks.
// ---------------------------------------------------------------------------

/**
 * A mask with `ones` one bits spread evenly over the top min(31, 2*ones) bits
 * of bits 0..30.
 *
 * Why the top: bit k of a gear hash depends on the last k+1 bytes only, so
 * high bits give the cut condition a wide (up to 31 byte) context. Why spread
 * (zero padding between ones): the FastCDC paper reports a slightly better
 * dedup ratio than with contiguous ones. Why bit 31 stays clear: the
 * two-bytes-at-a-time loop tests the intermediate hash shifted left by one
 * against mask << 1, which equals the one-byte test only if bit 31 of the mask
 * is zero (it would be shifted out).
 */
export function spreadMask(ones: number): number {
  if (!Number.isInteger(ones) || ones < 1 || ones > 31) {
    throw new Error(`spreadMask: need 1..31 one bits, got ${ones}`);
  }
  const span = Math.min(31, 2 * ones);
  let mask = 0;
  for (let i = 0; i < ones; i++) mask |= 1 << (30 - Math.floor((i * span) / ones));
  return mask >>> 0;
}

/** Normalization level 2 masks for an average chunk size (log2 rounded). */
export function masksFor(avgSize: number): { maskS: number; maskL: number } {
  const bits = Math.round(Math.log2(avgSize));
  return { maskS: spreadMask(bits + 2), maskL: spreadMask(bits - 2) };
}

// ---------------------------------------------------------------------------
// Options.
// ---------------------------------------------------------------------------

function validateOptions(opts: ChunkerOptions): void {
  const { minSize, avgSize, maxSize } = opts;
  for (const [name, v] of [["minSize", minSize], ["avgSize", avgSize], ["maxSize", maxSize]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new Error(`Chunker: ${name} must be a non-negative integer, got ${v}`);
    }
  }
  if (!(minSize <= avgSize && avgSize <= maxSize)) {
    throw new Error(
      `Chunker: need minSize <= avgSize <= maxSize, got ${minSize}/${avgSize}/${maxSize}`,
    );
  }
  if (avgSize < MIN_AVG_SIZE || avgSize > MAX_AVG_SIZE) {
    throw new Error(`Chunker: avgSize must be in [${MIN_AVG_SIZE}, ${MAX_AVG_SIZE}], got ${avgSize}`);
  }
  if (maxSize > MAX_MAX_SIZE) {
    throw new Error(`Chunker: maxSize must be <= ${MAX_MAX_SIZE}, got ${maxSize}`);
  }
}

// ---------------------------------------------------------------------------
// Hot loop.
// ---------------------------------------------------------------------------

/** Out-parameter of scan(): the hash after a scan that found no cut. */
let scanHash = 0;

/**
 * Rolls the gear hash `h` over src[i..end) and returns the index of the first
 * byte after which (h & mask) == 0, or -1 (then the final hash is in
 * scanHash). Allocation-free; everything lives in locals so the JIT keeps it
 * in registers.
 *
 * Two bytes per iteration (paper section 3.7): for bytes a, b
 *   h1 = (h << 1) + G[a]          (the one-byte hash after a)
 *   h2 = (h << 2) + GLS[a] = h1 << 1
 * and, since bit 31 of mask is 0, (h2 & (mask << 1)) == 0 iff (h1 & mask)
 * == 0. Then h2 + G[b] is exactly the one-byte hash after b. So this
 * produces the same cut points as the textbook loop with one shift less per
 * pair.
 */
function scan(src: Uint8Array, i: number, end: number, h: number, mask: number): number {
  const g = GEAR_I32;
  const gls = GEAR_LS_I32;
  const maskLs = mask << 1;
  const last = end - 1;
  while (i < last) {
    h = ((h << 2) + gls[src[i]]) | 0;
    if ((h & maskLs) === 0) return i;
    h = (h + g[src[i + 1]]) | 0;
    if ((h & mask) === 0) return i + 1;
    i += 2;
  }
  if (i < end) {
    h = ((h << 1) + g[src[i]]) | 0;
    if ((h & mask) === 0) return i;
  }
  scanHash = h;
  return -1;
}

// ---------------------------------------------------------------------------
// Chunker.
// ---------------------------------------------------------------------------

/**
 * Streaming FastCDC chunker.
 *
 * VIEW LIFETIME: the arrays returned by push() and finish() are views, not
 * copies: a chunk lying wholly inside the pushed `data` is a subarray of it,
 * a chunk spanning push() calls is a view of an internal buffer. They are
 * valid only until the next push()/finish() call (and a view into `data` only
 * as long as the caller leaves `data` unmodified). Hash/compress/copy them
 * right away.
 *
 * Memory: one allocation of 2 * maxSize bytes at construction, used as two
 * alternating carry buffers. Two are needed because one push() can both
 * return a chunk assembled in the carry buffer (the chunk that spanned the
 * previous push) and leave a new partial chunk behind that must be saved
 * somewhere without overwriting the chunk just returned.
 */
export class Chunker {
  private readonly minSize: number;
  private readonly avgSize: number;
  private readonly maxSize: number;
  private readonly maskS: number;
  private readonly maskL: number;
  private readonly carries: [Uint8Array, Uint8Array];
  /** Index into `carries` of the buffer holding the pending partial chunk. */
  private cur = 0;
  /** Bytes of the current (unfinished) chunk held in carries[cur]. */
  private pending = 0;
  /** Gear hash over chunk offsets [minSize, pending); 0 while pending <= minSize. */
  private hash = 0;

  constructor(opts: ChunkerOptions = DEFAULT_CHUNKING) {
    validateOptions(opts);
    // A zero-length chunk is meaningless; with minSize 0 a match on the very
    // first byte would produce one, so hashing starts at offset >= 1.
    this.minSize = Math.max(1, opts.minSize);
    this.avgSize = Math.max(this.minSize, opts.avgSize);
    this.maxSize = Math.max(this.avgSize, opts.maxSize);
    const masks = masksFor(opts.avgSize);
    this.maskS = masks.maskS;
    this.maskL = masks.maskL;
    // Not zero-filled: every byte is written before it is read, and clearing 512 KiB for each
    // upload was a large share of the server's time on NARs of a few hundred KiB.
    const backing = new Uint8Array(Buffer.allocUnsafeSlow(2 * this.maxSize).buffer);
    this.carries = [backing.subarray(0, this.maxSize), backing.subarray(this.maxSize)];
  }

  /** Feeds `data`; returns the chunks it completed (views, see class doc). */
  push(data: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let off = 0;
    if (this.pending > 0) {
      off = this.continuePending(data, out);
      if (off < 0) return out; // all of data went into the pending chunk
    }
    this.chunkInPlace(data, off, out);
    return out;
  }

  /** Returns the last, possibly short chunk (if any) and resets the chunker. */
  finish(): Uint8Array[] {
    if (this.pending === 0) return [];
    const last = this.carries[this.cur].subarray(0, this.pending);
    this.pending = 0;
    this.hash = 0;
    return [last];
  }

  /**
   * Finds the next cut of the chunk starting at data[start], scanning at most
   * up to data[end] exclusive. Chunk offsets already hashed are skipped:
   * `from` is the first chunk offset not yet hashed and `h` the hash so far.
   * Returns the cut as an absolute index into data, or -1 with the hash in
   * scanHash.
   */
  private findCut(data: Uint8Array, start: number, end: number, from: number, h: number): number {
    // Normalization point and max, as absolute indices into data.
    const avgAt = start + this.avgSize;
    let i = start + Math.max(from, this.minSize);
    if (i < avgAt) {
      const stop = Math.min(end, avgAt);
      const cut = scan(data, i, stop, h, this.maskS);
      if (cut >= 0 || stop === end) return cut;
      h = scanHash;
      i = avgAt;
    }
    const stop = Math.min(end, start + this.maxSize);
    if (i >= stop) {
      scanHash = h;
      return -1;
    }
    return scan(data, i, stop, h, this.maskL);
  }

  /**
   * Continues the chunk pending in the carry buffer with the start of `data`.
   * Returns the offset in data where the next chunk starts, or -1 if all of
   * data was absorbed into the still unfinished pending chunk.
   */
  private continuePending(data: Uint8Array, out: Uint8Array[]): number {
    const { pending, maxSize } = this;
    // Chunk offset p corresponds to data[p - pending]; view data as the tail
    // of the chunk by passing start = -pending.
    const room = maxSize - pending;
    const avail = Math.min(data.length, room);
    let cut = this.findCut(data, -pending, avail, pending, this.hash);
    if (cut < 0 && avail === room) cut = room; // reached maxSize: forced cut
    const carry = this.carries[this.cur];
    if (cut < 0) {
      carry.set(data.subarray(0, avail), pending);
      this.pending = pending + avail;
      this.hash = this.pending > this.minSize ? scanHash : 0;
      return -1;
    }
    carry.set(data.subarray(0, cut), pending);
    out.push(carry.subarray(0, pending + cut));
    this.pending = 0;
    this.hash = 0;
    this.cur ^= 1; // the returned view must survive the rest of this push
    return cut;
  }

  /** Cuts chunks directly out of data[off..]; saves the remainder as pending. */
  private chunkInPlace(data: Uint8Array, off: number, out: Uint8Array[]): void {
    const len = data.length;
    const { maxSize, minSize } = this;
    for (;;) {
      const remaining = len - off;
      if (remaining === 0) return;
      let cut = remaining > minSize ? this.findCut(data, off, len, 0, 0) : -1;
      if (cut < 0 && remaining >= maxSize) cut = off + maxSize;
      if (cut < 0) {
        this.carries[this.cur].set(data.subarray(off), 0);
        this.pending = remaining;
        this.hash = remaining > minSize ? scanHash : 0;
        return;
      }
      out.push(data.subarray(off, cut));
      off = cut;
    }
  }
}

/** Chunks a whole buffer at once; returns copies (convenient for tests). */
export function chunkAll(data: Uint8Array, opts: ChunkerOptions = DEFAULT_CHUNKING): Uint8Array[] {
  const chunker = new Chunker(opts);
  const chunks = chunker.push(data).map((c) => c.slice());
  for (const c of chunker.finish()) chunks.push(c.slice());
  return chunks;
}
