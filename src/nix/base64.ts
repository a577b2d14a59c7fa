import { NixFormatError } from "./errors.ts";

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict standard base64 (padded, no whitespace). Buffer.from(s, "base64") silently skips junk,
 * which would let two different strings name the same key or hash; the round-trip check also
 * rejects non-zero unused bits in the last character.
 */
export function decodeBase64Strict(s: string, what: string): Uint8Array {
  if (!B64.test(s)) throw new NixFormatError(`${what} is not valid base64`);
  const buf = Buffer.from(s, "base64");
  if (buf.toString("base64") !== s) throw new NixFormatError(`${what} is not canonical base64`);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64");
}
