import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  Chunker,
  type ChunkerOptions,
  chunkAll,
  DEFAULT_CHUNKING,
  GEAR,
  masksFor,
  spreadMask,
} from "../../src/store/chunker.ts";

const MiB = 1024 * 1024;
const SMALL: ChunkerOptions = { minSize: 64, avgSize: 256, maxSize: 1024 };

/** Deterministic pseudo-random bytes (splitmix32-style counter hash). */
function seededBytes(n: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let s = seed | 0;
  for (let i = 0; i < words.length; i++) {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    words[i] = z ^ (z >>> 16);
  }
  return new Uint8Array(words.buffer, 0, n);
}

/** Small deterministic generator for split positions. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const lengths = (chunks: Uint8Array[]): number[] => chunks.map((c) => c.length);

/** Pushes `data` in the given piece sizes, copying each result immediately. */
function chunkSplit(data: Uint8Array, pieces: number[], opts?: ChunkerOptions): Uint8Array[] {
  const chunker = new Chunker(opts);
  const out: Uint8Array[] = [];
  let off = 0;
  for (const p of pieces) {
    for (const c of chunker.push(data.subarray(off, off + p))) out.push(c.slice());
    off += p;
  }
  for (const c of chunker.push(data.subarray(off))) out.push(c.slice());
  for (const c of chunker.finish()) out.push(c.slice());
  return out;
}

function randomPieces(total: number, maxPiece: number, seed: number): number[] {
  const next = rng(seed);
  const pieces: number[] = [];
  for (let left = total; left > 0; ) {
    const p = Math.min(left, next(maxPiece + 1)); // includes empty pushes
    pieces.push(p);
    left -= p;
  }
  return pieces;
}

/**
 * Textbook one-byte-at-a-time FastCDC with the same table and masks: an
 * independent check of the two-bytes-per-iteration loop, the sub-minimum
 * skip and the streaming bookkeeping. Returns chunk lengths.
 */
function referenceLengths(data: Uint8Array, opts: ChunkerOptions): number[] {
  const { maskS, maskL } = masksFor(opts.avgSize);
  const min = Math.max(1, opts.minSize);
  const out: number[] = [];
  for (let start = 0; start < data.length; ) {
    const rem = data.length - start;
    let len = rem >= opts.maxSize ? opts.maxSize : rem;
    let h = 0;
    for (let i = min; i < Math.min(rem, opts.maxSize); i++) {
      h = ((h << 1) + (GEAR[data[start + i]] | 0)) | 0;
      if ((h & (i < opts.avgSize ? maskS : maskL)) === 0) {
        len = i;
        break;
      }
    }
    out.push(len);
    start += len;
  }
  return out;
}

describe("gear table and masks", () => {
  test("gear table is pinned (changing it would break dedup of stored chunks)", () => {
    expect(GEAR.length).toBe(256);
    expect(new Set(GEAR).size).toBe(256);
    expect(sha256(new Uint8Array(GEAR.buffer))).toBe(PINNED_GEAR_SHA256);
  });

  test("level 2 normalization masks: log2(avg)±2 ones, bit 31 clear", () => {
    const popcount = (x: number) => x.toString(2).split("").filter((c) => c === "1").length;
    for (let bits = 6; bits <= 28; bits++) {
      const { maskS, maskL } = masksFor(2 ** bits);
      expect(popcount(maskS)).toBe(bits + 2);
      expect(popcount(maskL)).toBe(bits - 2);
      expect(maskS >>> 31).toBe(0);
      expect(maskL >>> 31).toBe(0);
    }
    // Spread, not contiguous: 14 ones over the top 28 of bits 0..30.
    expect(spreadMask(14)).toBe(0b0101_0101_0101_0101_0101_0101_0101_0000);
  });
});

describe("cut points", () => {
  test("match the textbook one-byte reference loop", () => {
    const data = seededBytes(4 * MiB + 12345, 1);
    for (const opts of [SMALL, { minSize: 0, avgSize: 64, maxSize: 64 }, { minSize: 100, avgSize: 1000, maxSize: 5000 }, DEFAULT_CHUNKING]) {
      const small = opts.avgSize < 1024 ? data.subarray(0, 300_000) : data;
      expect(lengths(chunkAll(small, opts))).toEqual(referenceLengths(small, opts));
    }
  });

  test("golden cut points are stable", () => {
    const data = seededBytes(8 * MiB, 42);
    const lens = lengths(chunkAll(data));
    expect(lens.slice(0, 8)).toEqual(PINNED_FIRST_LENGTHS);
    expect(sha256(new TextEncoder().encode(lens.join(",")))).toBe(PINNED_LENGTHS_SHA256);
  });

  test("are identical for random push splits", () => {
    const data = seededBytes(6 * MiB + 7, 2);
    const whole = lengths(chunkAll(data));
    for (const [seed, maxPiece] of [[1, 1000], [2, 70_000], [3, 300_000], [4, 3 * MiB]] as const) {
      const split = chunkSplit(data, randomPieces(data.length, maxPiece, seed));
      expect(lengths(split)).toEqual(whole);
      expect(sha256(Buffer.concat(split))).toBe(sha256(data));
    }
  });

  test("are identical for 1-byte pushes", () => {
    for (const [data, opts] of [
      [seededBytes(50_000, 3), SMALL],
      [seededBytes(600_000, 4), DEFAULT_CHUNKING],
    ] as const) {
      const ones = chunkSplit(data, new Array<number>(data.length).fill(1), opts);
      expect(lengths(ones)).toEqual(lengths(chunkAll(data, opts)));
      expect(sha256(Buffer.concat(ones))).toBe(sha256(data));
    }
  });

  test("one huge push equals many small ones", () => {
    const data = seededBytes(64 * MiB, 5);
    const chunker = new Chunker();
    const huge = chunker.push(data);
    expect(huge.every((c) => c.buffer === data.buffer)).toBe(true); // zero-copy views
    const hugeLengths = [...lengths(huge), ...lengths(chunker.finish())];
    const split = chunkSplit(data, randomPieces(data.length, 1 * MiB, 5));
    expect(lengths(split)).toEqual(hugeLengths);
  });

  test("zero runs chunk deterministically within bounds", () => {
    const data = new Uint8Array(3 * MiB);
    const chunks = chunkAll(data);
    expect(lengths(chunks)).toEqual(referenceLengths(data, DEFAULT_CHUNKING));
    for (const c of chunks.slice(0, -1)) expect(c.length).toBeGreaterThanOrEqual(DEFAULT_CHUNKING.minSize);
  });
});

describe("chunk sizes", () => {
  const data = seededBytes(64 * MiB, 6);
  const chunks = new Chunker().push(data);
  const sizes = lengths(chunks);

  test("every chunk but the last is within [minSize, maxSize]", () => {
    for (const n of sizes) {
      expect(n).toBeGreaterThanOrEqual(DEFAULT_CHUNKING.minSize);
      expect(n).toBeLessThanOrEqual(DEFAULT_CHUNKING.maxSize);
    }
    const small = chunkAll(seededBytes(1 * MiB, 7), SMALL);
    for (const c of small.slice(0, -1)) {
      expect(c.length).toBeGreaterThanOrEqual(SMALL.minSize);
      expect(c.length).toBeLessThanOrEqual(SMALL.maxSize);
    }
    expect(small.at(-1)!.length).toBeLessThanOrEqual(SMALL.maxSize);
  });

  test("average is within ±30% of avgSize on 64 MiB", () => {
    const avg = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(avg).toBeGreaterThan(0.7 * DEFAULT_CHUNKING.avgSize);
    expect(avg).toBeLessThan(1.3 * DEFAULT_CHUNKING.avgSize);
  });

  test("minSize == maxSize gives fixed-size chunks", () => {
    const chunks = chunkAll(seededBytes(10_000, 8), { minSize: 1000, avgSize: 1000, maxSize: 1000 });
    expect(lengths(chunks)).toEqual(new Array<number>(10).fill(1000));
  });
});

describe("edit locality", () => {
  const original = seededBytes(16 * MiB, 9);
  const known = new Set(chunkAll(original).map(sha256));

  function reusedFraction(edited: Uint8Array): number {
    let reused = 0;
    for (const c of chunkAll(edited)) if (known.has(sha256(c))) reused += c.length;
    return reused / edited.length;
  }

  function insertAt(at: number): Uint8Array {
    const edited = new Uint8Array(original.length + 100);
    edited.set(original.subarray(0, at));
    edited.set(seededBytes(100, 10), at);
    edited.set(original.subarray(at), at + 100);
    return edited;
  }

  test("100 bytes inserted near the start", () => {
    expect(reusedFraction(insertAt(1000))).toBeGreaterThanOrEqual(0.9);
  });

  test("100 bytes inserted in the middle", () => {
    expect(reusedFraction(insertAt(original.length / 2 + 777))).toBeGreaterThanOrEqual(0.9);
  });
});

describe("streaming API", () => {
  test("0 bytes give no chunks, 1 byte one chunk", () => {
    expect(chunkAll(new Uint8Array(0))).toEqual([]);
    const c = new Chunker();
    expect(c.push(new Uint8Array(0))).toEqual([]);
    expect(c.finish()).toEqual([]);
    const one = chunkAll(new Uint8Array([42]));
    expect(one.length).toBe(1);
    expect([...one[0]]).toEqual([42]);
  });

  test("a spanning chunk and the new tail from one push do not clobber each other", () => {
    // Pushes sized so that each push completes a chunk assembled in the carry
    // buffer and also leaves a long partial chunk behind.
    const data = seededBytes(8 * MiB, 11);
    const expected = chunkAll(data).map(sha256);
    const chunker = new Chunker();
    const got: string[] = [];
    for (let off = 0; off < data.length; off += 250_000) {
      const res = chunker.push(data.subarray(off, off + 250_000));
      got.push(...res.map(sha256)); // all views of one push are valid together
    }
    got.push(...chunker.finish().map(sha256));
    expect(got).toEqual(expected);
  });

  test("chunks inside one push are subarrays of it; spanning ones are not", () => {
    const data = seededBytes(2 * MiB, 12);
    const chunker = new Chunker();
    const first = chunker.push(data.subarray(0, 1 * MiB));
    expect(first.length).toBeGreaterThan(0);
    for (const c of first) expect(c.buffer).toBe(data.buffer);
    const second = chunker.push(data.subarray(1 * MiB));
    expect(second[0].buffer).not.toBe(data.buffer); // assembled across the boundary
    for (const c of second.slice(1)) expect(c.buffer).toBe(data.buffer);
  });

  test("a chunker can be reused after finish()", () => {
    const a = seededBytes(500_000, 13);
    const chunker = new Chunker(SMALL);
    const run = () => [...chunker.push(a), ...chunker.finish()].map(sha256);
    const first = run();
    expect(run()).toEqual(first);
    expect(first).toEqual(chunkAll(a, SMALL).map(sha256));
  });
});

describe("option validation", () => {
  const bad: Array<[ChunkerOptions, RegExp]> = [
    [{ minSize: 2000, avgSize: 1000, maxSize: 4000 }, /minSize <= avgSize <= maxSize/],
    [{ minSize: 100, avgSize: 5000, maxSize: 4000 }, /minSize <= avgSize <= maxSize/],
    [{ minSize: 16, avgSize: 32, maxSize: 128 }, /avgSize must be in/],
    [{ minSize: 16, avgSize: 2 ** 29, maxSize: 2 ** 30 }, /avgSize must be in/],
    [{ minSize: 16, avgSize: 1024, maxSize: 2 ** 31 }, /maxSize must be <=/],
    [{ minSize: -1, avgSize: 1024, maxSize: 4096 }, /minSize must be a non-negative integer/],
    [{ minSize: 1, avgSize: 1024.5, maxSize: 4096 }, /avgSize must be a non-negative integer/],
    [{ minSize: 1, avgSize: 1024, maxSize: Number.NaN }, /maxSize must be a non-negative integer/],
  ];
  for (const [opts, msg] of bad) {
    test(`rejects ${JSON.stringify(opts)}`, () => {
      expect(() => new Chunker(opts)).toThrow(msg);
    });
  }

  test("accepts non-powers of two and the defaults", () => {
    expect(() => new Chunker({ minSize: 1000, avgSize: 3000, maxSize: 10_000 })).not.toThrow();
    expect(() => new Chunker()).not.toThrow();
    expect(() => new Chunker({ minSize: 64, avgSize: 64, maxSize: 64 })).not.toThrow();
  });
});

// Pinned from the implementation when the table and masks were chosen (after
// it had been checked against referenceLengths). If these change, every
// stored chunk stops deduplicating against new uploads: don't.
const PINNED_GEAR_SHA256 = "cb0caf2ced9b652b3d2861e64351cb636618b14cf3100c1ea5a178a565f4080f";
const PINNED_FIRST_LENGTHS = [102582, 68587, 84541, 66226, 87530, 78173, 81607, 86495];
const PINNED_LENGTHS_SHA256 = "fb9e62d86a99aaa0ee3a646d4039762c18e87518cbcbc7900e2f6ef951ad0042";
