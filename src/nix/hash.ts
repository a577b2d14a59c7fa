import { decodeBase32, encodeBase32 } from "./base32.ts";
import { decodeBase64Strict, encodeBase64 } from "./base64.ts";
import { NixFormatError } from "./errors.ts";

const SHA256_SIZE = 32;
const BASE32_LEN = 52; // ceil(32 * 8 / 5)
const HEX = /^[0-9a-fA-F]{64}$/;

/** Bun's native hasher: importing node:crypto cost every client command about 2 ms at start. */
export function sha256(data: Uint8Array | string): Uint8Array {
  const d = new Bun.CryptoHasher("sha256").update(data).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.length);
}

/**
 * Accepts the three spellings garret meets on the wire (SPEC §1): narinfo's `sha256:<nix-base32>`,
 * Attic's `sha256:<hex>`, and `nix path-info --json`'s SRI `sha256-<base64>`. The encoding after
 * "sha256:" is told apart by length, as Nix does.
 */
export function parseSha256(s: string): Uint8Array {
  if (s.startsWith("sha256:")) {
    const body = s.slice(7);
    if (body.length === BASE32_LEN) return decodeBase32(body);
    if (body.length === 64) {
      if (!HEX.test(body)) throw new NixFormatError(`invalid hex in hash ${JSON.stringify(s)}`);
      const b = Buffer.from(body, "hex");
      return new Uint8Array(b.buffer, b.byteOffset, b.length);
    }
    throw new NixFormatError(`hash ${JSON.stringify(s)} has the wrong length for sha256 (want 52 base32 or 64 hex characters)`);
  }
  if (s.startsWith("sha256-")) {
    const h = decodeBase64Strict(s.slice(7), `SRI hash ${JSON.stringify(s)}`);
    if (h.length !== SHA256_SIZE) throw new NixFormatError(`SRI hash ${JSON.stringify(s)} is not 32 bytes`);
    return h;
  }
  throw new NixFormatError(`unsupported hash ${JSON.stringify(s)}: expected sha256:<base32|hex> or sha256-<base64>`);
}

function checkSize(h: Uint8Array): void {
  if (h.length !== SHA256_SIZE) throw new NixFormatError(`sha256 hash must be 32 bytes, got ${h.length}`);
}

export function formatNixBase32(h: Uint8Array): string {
  checkSize(h);
  return `sha256:${encodeBase32(h)}`;
}

export function formatHex(h: Uint8Array): string {
  checkSize(h);
  return `sha256:${Buffer.from(h.buffer, h.byteOffset, h.length).toString("hex")}`;
}

export function formatSri(h: Uint8Array): string {
  checkSize(h);
  return `sha256-${encodeBase64(h)}`;
}
