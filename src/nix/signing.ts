import { createHash, createPrivateKey, getRandomValues, sign as cryptoSign, type KeyObject } from "node:crypto";
import * as ed from "@noble/ed25519";
import { decodeBase64Strict, encodeBase64 } from "./base64.ts";
import { NixFormatError } from "./errors.ts";
import { formatNixBase32, parseSha256 } from "./hash.ts";
import { parseStorePath } from "./store-path.ts";

/*
 * Ed25519 via @noble/ed25519's synchronous API, with SHA-512 from node:crypto. Sync because
 * parseSecretKey must check that a key file's public half belongs to its seed, and parseSecretKey
 * is synchronous. The hook is set only if nobody set one already; any correct SHA-512 will do.
 * Verification uses RFC 8032's strict rules (zip215: false), the closer match to the libsodium
 * crypto_sign_verify_detached that Nix uses, so we never accept what Nix would reject.
 */
if (typeof ed.hashes.sha512 !== "function") {
  ed.hashes.sha512 = (msg) => Uint8Array.from(createHash("sha512").update(msg).digest());
}

export interface SecretKey {
  name: string;
  /** 32-byte RFC 8032 seed. */
  seed: Uint8Array;
  /** 32-byte public key derived from seed. */
  publicKey: Uint8Array;
}

export interface PublicKey {
  name: string;
  key: Uint8Array;
}

const enc = new TextEncoder();

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Nix splits key and signature strings at the first ':'; a name must therefore not contain one,
// and whitespace would not survive trusted-public-keys (a space-separated list).
function checkKeyName(name: string): void {
  if (name === "" || /[:\s]/.test(name)) throw new NixFormatError(`invalid key name ${JSON.stringify(name)}`);
}

function splitNamed(text: string, what: string): [string, string] {
  const colon = text.indexOf(":");
  if (colon <= 0) throw new NixFormatError(`${what} is not <name>:<base64>`);
  const name = text.slice(0, colon);
  checkKeyName(name);
  return [name, text.slice(colon + 1)];
}

/**
 * SPEC §2: `1;<storePath>;<narHash as sha256:base32>;<narSize>;<refs joined by ','>`. References
 * are sorted and de-duplicated because Nix builds this string from a std::set, so a caller passing
 * them in another order still gets the bytes Nix signs and checks.
 */
export function fingerprint(storePath: string, narHash: string, narSize: number, references: string[]): string {
  const sp = parseStorePath(storePath, storePath.slice(0, Math.max(storePath.lastIndexOf("/"), 1)));
  if (!Number.isSafeInteger(narSize) || narSize < 0) throw new NixFormatError(`invalid NAR size ${narSize}`);
  const refs = [...new Set(references)].sort();
  for (const r of refs) parseStorePath(r, sp.storeDir);
  return `1;${sp.path};${formatNixBase32(parseSha256(narHash))};${narSize};${refs.join(",")}`;
}

export function parseSecretKey(text: string): SecretKey {
  const [name, b64] = splitNamed(text.trim(), "secret key");
  const raw = decodeBase64Strict(b64, `secret key ${JSON.stringify(name)}`);
  if (raw.length !== 64) throw new NixFormatError(`secret key ${JSON.stringify(name)} is ${raw.length} bytes, expected 64`);
  const seed = raw.slice(0, 32);
  const publicKey = raw.slice(32);
  if (!bytesEqual(ed.getPublicKey(seed), publicKey)) {
    throw new NixFormatError(`secret key ${JSON.stringify(name)}: public half does not match the seed`);
  }
  return { name, seed, publicKey };
}

export function parsePublicKey(text: string): PublicKey {
  const [name, b64] = splitNamed(text.trim(), "public key");
  const key = decodeBase64Strict(b64, `public key ${JSON.stringify(name)}`);
  if (key.length !== 32) throw new NixFormatError(`public key ${JSON.stringify(name)} is ${key.length} bytes, expected 32`);
  return { name, key: key.slice() };
}

export function formatSecretKey(k: SecretKey): string {
  const raw = new Uint8Array(64);
  raw.set(k.seed, 0);
  raw.set(k.publicKey, 32);
  return `${k.name}:${encodeBase64(raw)}`;
}

export function formatPublicKey(k: PublicKey | SecretKey): string {
  return `${k.name}:${encodeBase64("key" in k ? k.key : k.publicKey)}`;
}

export async function generateSecretKey(name: string): Promise<SecretKey> {
  checkKeyName(name);
  const seed = getRandomValues(new Uint8Array(32));
  return { name, seed, publicKey: ed.getPublicKey(seed) };
}

// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): this prefix, then the 32 seed bytes.
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const nativeKeys = new WeakMap<SecretKey, KeyObject>();

/**
 * Signs with the runtime's native Ed25519 (BoringSSL in Bun), about 6x faster than the pure-JS
 * path on the upload hot path. Ed25519 is deterministic, so the signature is byte-identical to
 * noble's (and to `nix store sign`, which the tests check); noble still parses and verifies keys.
 */
export async function signFingerprint(k: SecretKey, fp: string): Promise<string> {
  let key = nativeKeys.get(k);
  if (!key) {
    key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, k.seed]), format: "der", type: "pkcs8" });
    nativeKeys.set(k, key);
  }
  return `${k.name}:${encodeBase64(new Uint8Array(cryptoSign(null, enc.encode(fp), key)))}`;
}

/** `<key name>:<base64>` whose base64 is exactly an ed25519 signature's 64 bytes. */
export function isWellFormedSignature(sig: string): boolean {
  const colon = sig.indexOf(":");
  if (colon <= 0 || sig.length > 1024 || /\s/.test(sig)) return false;
  try {
    return decodeBase64Strict(sig.slice(colon + 1), "signature").length === 64;
  } catch {
    return false;
  }
}

/** A malformed signature is simply not a valid one: false, never an exception. */
export async function verifySignature(keys: PublicKey[], fp: string, sig: string): Promise<boolean> {
  const colon = sig.indexOf(":");
  if (colon <= 0) return false;
  const name = sig.slice(0, colon);
  let raw: Uint8Array;
  try {
    raw = decodeBase64Strict(sig.slice(colon + 1), "signature");
  } catch {
    return false;
  }
  if (raw.length !== 64) return false;
  const msg = enc.encode(fp);
  for (const k of keys) {
    if (k.name !== name) continue;
    try {
      if (ed.verify(raw, msg, k.key, { zip215: false })) return true;
    } catch {
      // noble throws on keys that are not curve points; that key just does not verify.
    }
  }
  return false;
}
