import { SignJWT, jwtVerify, errors as joseErrors } from "jose";
import { ATTIC_CLAIM, type CachePermissionClaims } from "./permissions.ts";
import { parseDuration } from "../duration.ts";

export interface TokenClaims {
  sub: string;
  exp: number;
  /** The token's id, when it has one (provenance records it with every push). */
  jti?: string;
  caches: CachePermissionClaims;
}

/** A token that is malformed, forged, expired or not yet valid. Its message is safe to show. */
export class InvalidToken extends Error {}

/**
 * Mints and verifies Attic-compatible HS256 JWTs. The key is the decoded bytes of a base64 secret,
 * exactly like Attic's `token-hs256-secret-base64`, so tokens work across both servers. jose
 * verifies the MAC with WebCrypto, which compares in constant time.
 */
export class TokenAuthority {
  private readonly key: Uint8Array<ArrayBuffer>;

  constructor(secretBase64: string) {
    this.key = new Uint8Array(Buffer.from(secretBase64.trim(), "base64"));
    if (this.key.length < 32) throw new Error("token secret must decode to at least 32 bytes");
  }

  async mint(sub: string, validitySeconds: number, caches: CachePermissionClaims): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ [ATTIC_CLAIM]: { caches } })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + validitySeconds)
      .sign(this.key);
  }

  /** The HMAC key imported once: importing it on every request was a tenth of an upload's cost. */
  private cryptoKey: Promise<CryptoKey> | null = null;

  private verifyKey(): Promise<CryptoKey> {
    this.cryptoKey ??= crypto.subtle.importKey("raw", this.key, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    return this.cryptoKey;
  }

  /**
   * Tokens verified recently, keyed by their SHA-256 (the raw token is never kept): a client
   * sends the same token with every request of a push, and checking its MAC each time was a
   * tenth of a small upload's server time. Only good tokens are remembered, each until its
   * expiry, so a cached answer is always the one a fresh check would give.
   */
  private readonly verified = new Map<string, TokenClaims>();

  async verify(token: string): Promise<TokenClaims> {
    const digest = new Bun.CryptoHasher("sha256").update(token).digest("base64");
    const known = this.verified.get(digest);
    if (known) {
      if (known.exp > Date.now() / 1000) return known;
      this.verified.delete(digest);
    }
    // Frozen: every request of a push gets this same object (and permissions are memoised per object).
    const claims = Object.freeze(await this.verifyFully(token));
    if (this.verified.size >= VERIFIED_TOKENS_KEPT) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(digest, claims);
    return claims;
  }

  private async verifyFully(token: string): Promise<TokenClaims> {
    try {
      const { payload } = await jwtVerify(token, await this.verifyKey(), { algorithms: ["HS256"] });
      if (typeof payload.sub !== "string" || typeof payload.exp !== "number") {
        throw new InvalidToken("token lacks sub or exp");
      }
      const attic = payload[ATTIC_CLAIM] as { caches?: unknown } | undefined;
      const caches = attic && typeof attic.caches === "object" && attic.caches !== null
        ? (attic.caches as CachePermissionClaims) : {};
      const jti = typeof payload.jti === "string" && payload.jti.length <= 128 ? payload.jti : undefined;
      return jti === undefined ? { sub: payload.sub, exp: payload.exp, caches } : { sub: payload.sub, exp: payload.exp, jti, caches };
    } catch (err) {
      if (err instanceof InvalidToken) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new InvalidToken("token has expired");
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw new InvalidToken(`token rejected: ${err.message}`);
      throw new InvalidToken("token is invalid");
    }
  }
}

/** How many verified tokens the server remembers (the oldest is forgotten first). */
const VERIFIED_TOKENS_KEPT = 4096;

/** Parses validity in the one duration grammar (src/duration.ts: 30s, 15m, 12h, 1d, 2w, 3mo, 1y) into seconds. */
export function parseValidity(text: string): number {
  const value = parseDuration(text, "validity");
  if (value <= 0) throw new Error("validity must be positive");
  return value;
}
