/**
 * decodeWhole decodes a small zstd body in one call of Bun's decoder, which has no output cap, only
 * when zstdDecodedBound proves from the frame and block headers that the output fits. The bound
 * must never be below what a body really decodes to (whoever compressed it: Bun, node:zlib with a
 * checksum, several frames, skippable frames), and a bomb must still stop at the cap.
 */
import { expect, test } from "bun:test";
import zlib from "node:zlib";
import { decodeWhole, zstdDecodedBound } from "../../src/store/compression.ts";

const text = (n: number): Uint8Array => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = 97 + ((i * 7 + (i >> 5)) % 26);
  return b;
};
const noise = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));
const skippable = (payload: number): Uint8Array => {
  const b = new Uint8Array(8 + payload);
  new DataView(b.buffer).setUint32(0, 0x184d2a53, true);
  new DataView(b.buffer).setUint32(4, payload, true);
  return b;
};

const cases: [string, Uint8Array, Uint8Array][] = (() => {
  const small = text(16 * 1024 + 123);
  const big = Buffer.concat([noise(200 * 1024), text(300 * 1024)]);
  return [
    ["a small NAR, Bun", small, Bun.zstdCompressSync(small)],
    ["incompressible bytes (raw blocks)", noise(150 * 1024), Bun.zstdCompressSync(noise(150 * 1024))],
    ["node:zlib with a content checksum", big, zlib.zstdCompressSync(big, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } })],
    ["two frames and a skippable one", Buffer.concat([small, big]),
      Buffer.concat([Bun.zstdCompressSync(small), skippable(5), zlib.zstdCompressSync(big)])],
  ];
})();

for (const [name, plain, packed] of cases) {
  test(`bound covers the output: ${name}`, () => {
    // Incompressible input is compared with itself, whatever noise() gave this time.
    const want = name.startsWith("incompressible") ? Bun.zstdDecompressSync(packed) : plain;
    const bound = zstdDecodedBound(packed);
    expect(bound).not.toBeNull();
    expect(bound!).toBeGreaterThanOrEqual(want.length);
    expect(Buffer.from(decodeWhole(packed, "zstd", 4 * 1024 * 1024)!).equals(Buffer.from(want))).toBe(true);
  });
}

test("a truncated body or one that is not zstd has no bound (it goes the capped node:zlib way)", () => {
  const packed = Bun.zstdCompressSync(text(40 * 1024));
  expect(zstdDecodedBound(packed.subarray(0, packed.length - 2))).toBeNull();
  expect(zstdDecodedBound(new TextEncoder().encode("not zstd at all"))).toBeNull();
});

test("a bomb (64 MiB of zeros in a few hundred bytes) is bounded by its block headers and stops at the cap", () => {
  const bomb = Bun.zstdCompressSync(new Uint8Array(64 * 1024 * 1024));
  expect(bomb.length).toBeLessThan(8 * 1024);
  expect(zstdDecodedBound(bomb)!).toBeGreaterThanOrEqual(64 * 1024 * 1024);
  expect(decodeWhole(bomb, "zstd", 1024 * 1024)).toBeNull();
});
