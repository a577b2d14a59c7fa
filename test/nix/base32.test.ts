import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BASE32_ALPHABET, decodeBase32, encodeBase32 } from "../../src/nix/base32.ts";
import { NixFormatError } from "../../src/nix/errors.ts";
import { formatHex, formatNixBase32, formatSri, parseSha256, sha256 } from "../../src/nix/hash.ts";
import { removeDir, requireNix, run, runRaw, tempDir } from "./nix-tool.ts";

const random = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

test("nix is installed (required, never skipped)", () => {
  requireNix();
});

describe("base32", () => {
  test("round trips every length 0..64", () => {
    for (let len = 0; len <= 64; len++) {
      for (let k = 0; k < 20; k++) {
        const b = random(len);
        const s = encodeBase32(b);
        expect(s.length).toBe(Math.ceil((len * 8) / 5));
        expect(decodeBase32(s)).toEqual(b);
      }
    }
  });

  test("known vectors: all zeros and all ones", () => {
    expect(encodeBase32(new Uint8Array(32))).toBe("0".repeat(52));
    expect(encodeBase32(new Uint8Array(20).fill(255))).toBe("z".repeat(32));
    // 32 bytes = 256 bits: the first of 52 characters carries only 1 real bit.
    expect(encodeBase32(new Uint8Array(32).fill(255))).toBe("1" + "z".repeat(51));
  });

  test("matches nix hash to-base32 / to-base16 / to-sri for random hashes", () => {
    const hashes = Array.from({ length: 16 }, () => random(32));
    const b32 = run(["nix", "hash", "to-base32", "--type", "sha256", ...hashes.map(hex)]).split("\n");
    expect(b32.length).toBe(hashes.length);
    hashes.forEach((h, i) => {
      expect(encodeBase32(h)).toBe(b32[i]!);
      expect(decodeBase32(b32[i]!)).toEqual(h);
      expect(formatNixBase32(h)).toBe(`sha256:${b32[i]}`);
    });
    const b16 = run(["nix", "hash", "to-base16", "--type", "sha256", ...b32]).split("\n");
    const sri = run(["nix", "hash", "to-sri", "--type", "sha256", ...b32]).split("\n");
    hashes.forEach((h, i) => {
      expect(formatHex(h)).toBe(`sha256:${b16[i]}`);
      expect(formatSri(h)).toBe(sri[i]!);
      expect(parseSha256(`sha256:${b16[i]}`)).toEqual(h);
      expect(parseSha256(`sha256:${b32[i]}`)).toEqual(h);
      expect(parseSha256(sri[i]!)).toEqual(h);
    });
  });

  test("nix-hash --flat --base32 of a file equals sha256 + encodeBase32", () => {
    const dir = tempDir("hash");
    afterAll(() => removeDir(dir));
    for (const size of [0, 1, 7, 8, 1000, 65537]) {
      const data = random(size);
      const file = join(dir, `f${size}`);
      writeFileSync(file, data);
      expect(encodeBase32(sha256(data))).toBe(run(["nix-hash", "--type", "sha256", "--base32", "--flat", file]));
    }
    expect(hex(sha256("abc"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test("rejects characters outside the alphabet", () => {
    const good = encodeBase32(random(32));
    for (const bad of ["e", "o", "u", "t", "E", "A", "-", " ", "é", "\0"]) {
      const s = bad + good.slice(1);
      expect(() => decodeBase32(s)).toThrow(NixFormatError);
      expect(() => decodeBase32(good.slice(0, 20) + bad + good.slice(21))).toThrow(NixFormatError);
    }
    expect(BASE32_ALPHABET).toBe("0123456789abcdfghijklmnpqrsvwxyz");
  });

  test("rejects non-zero overflow bits", () => {
    // 52 characters hold 260 bits; the first character may only use its lowest bit.
    expect(decodeBase32("1" + "0".repeat(51))).toEqual((() => { const b = new Uint8Array(32); b[31] = 0x80; return b; })());
    for (const c of "23456789abcdfghijklmnpqrsvwxyz") {
      expect(() => decodeBase32(c + "0".repeat(51))).toThrow(/overflow/);
    }
    // A single character decodes to zero bytes, so any non-zero digit overflows.
    expect(decodeBase32("0")).toEqual(new Uint8Array(0));
    expect(() => decodeBase32("1")).toThrow(NixFormatError);
    // 32 characters are exactly 20 bytes: no overflow bits at all.
    expect(decodeBase32("z".repeat(32))).toEqual(new Uint8Array(20).fill(255));
  });

  test("nix itself rejects what we reject", () => {
    expect(runRaw(["nix", "hash", "to-base16", "--type", "sha256", "2" + "0".repeat(51)]).code).not.toBe(0);
    expect(runRaw(["nix", "hash", "to-base16", "--type", "sha256", "1" + "0".repeat(51)]).code).toBe(0);
  });
});

describe("parseSha256", () => {
  const h = random(32);
  test("accepts the three forms, hex in either case", () => {
    expect(parseSha256(formatNixBase32(h))).toEqual(h);
    expect(parseSha256(formatHex(h))).toEqual(h);
    expect(parseSha256(formatHex(h).toUpperCase().replace("SHA256", "sha256"))).toEqual(h);
    expect(parseSha256(formatSri(h))).toEqual(h);
  });

  test("rejects wrong algorithm, lengths and characters", () => {
    const b32 = encodeBase32(h);
    const bad = [
      "", b32, `sha1:${b32}`, `sha512:${b32}`, `md5:${hex(h)}`, `SHA256:${b32}`,
      `sha256:${b32.slice(1)}`, `sha256:${b32}0`, `sha256:${hex(h).slice(2)}`, `sha256:${hex(h)}00`,
      `sha256:${"g".repeat(64)}`, `sha256:${"e".repeat(52)}`, `sha256:${Buffer.from(h).toString("base64")}`,
      `sha256-${Buffer.from(h).toString("base64").replace(/=$/, "")}`, `sha256-${Buffer.from(random(31)).toString("base64")}`,
      `sha256-${Buffer.from(random(33)).toString("base64")}`, `sha256-!${Buffer.from(h).toString("base64").slice(1)}`,
      `sha256- ${Buffer.from(h).toString("base64")}`, `sha256-${Buffer.from(h).toString("base64url")}`,
    ];
    for (const s of bad) expect(() => parseSha256(s)).toThrow(NixFormatError);
  });

  test("rejects SRI whose last character has stray low bits", () => {
    const sri = formatSri(new Uint8Array(32)); // "...AAA=" ; 'B' sets an unused bit
    expect(() => parseSha256(sri.slice(0, -2) + "B=")).toThrow(NixFormatError);
  });

  test("formatters refuse hashes that are not 32 bytes", () => {
    expect(() => formatNixBase32(random(20))).toThrow(NixFormatError);
    expect(() => formatHex(random(33))).toThrow(NixFormatError);
    expect(() => formatSri(random(0))).toThrow(NixFormatError);
  });
});
