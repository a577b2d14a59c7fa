import { NixFormatError } from "./errors.ts";

/**
 * Nix's own base32 (SPEC §1): not RFC 4648. The alphabet omits e, o, u, t, and the string is the
 * bytes read as one little-endian bit string, most significant 5-bit group first.
 * (SPEC §1 prints the alphabet without its "m"; Nix's has all 32 characters, m included.)
 */
export const BASE32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";

// Char code → digit value, -1 for characters outside the alphabet (all of 0..255 covered).
const DIGIT = new Int8Array(256).fill(-1);
for (let i = 0; i < BASE32_ALPHABET.length; i++) DIGIT[BASE32_ALPHABET.charCodeAt(i)] = i;

/** Digit value of a char code, or -1. Exported for store-path validation without allocation. */
export function base32Digit(code: number): number {
  return code < 256 ? DIGIT[code]! : -1;
}

export function encodeBase32(bytes: Uint8Array): string {
  const size = bytes.length;
  const len = Math.ceil((size * 8) / 5);
  let out = "";
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const hi = i + 1 < size ? bytes[i + 1]! << (8 - j) : 0;
    out += BASE32_ALPHABET[((bytes[i]! >> j) | hi) & 31];
  }
  return out;
}

/**
 * Inverse of encodeBase32. The output has floor(len*5/8) bytes; the bits of the first character
 * that would land beyond it must be zero, otherwise two strings would decode to the same bytes
 * (Nix rejects those too).
 */
export function decodeBase32(s: string): Uint8Array {
  const len = s.length;
  const size = Math.floor((len * 5) / 8);
  const out = new Uint8Array(size);
  for (let n = 0; n < len; n++) {
    const code = s.charCodeAt(len - n - 1);
    const digit = base32Digit(code);
    if (digit < 0) {
      throw new NixFormatError(`invalid character ${JSON.stringify(s[len - n - 1])} in Nix base32 string`);
    }
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    if (i < size) out[i] = out[i]! | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1] = out[i + 1]! | carry;
    else if (carry !== 0 || (i >= size && digit !== 0)) {
      throw new NixFormatError(`Nix base32 string ${JSON.stringify(s)} has non-zero overflow bits`);
    }
  }
  return out;
}
