import { SignJWT, jwtVerify, importPKCS8, importSPKI, errors as joseErrors, type JWTPayload } from "jose";
import { ATTIC_CLAIM, type CachePermissionClaims } from "./permissions.ts";
import { parseDuration } from "../duration.ts";

/**
 * The verified claims of a caller's token. `jti` is the token's id in the registry (tokens minted
 * elsewhere have none); `iss`/`aud` are as the token states them (already checked against the
 * server's bound issuer/audiences). Provenance and audit records take `sub` and `jti` from here.
 */
export interface TokenClaims {
  sub: string;
  exp: number;
  /** The token's id, when it has one (provenance records it with every push). */
  jti?: string;
  caches: CachePermissionClaims;
  iat?: number;
  iss?: string;
  aud?: string[];
  /** Set when the token came from a trusted OIDC issuer (then `caches` is its mapping's grant). */
  oidcIssuer?: string;
}

/** A token that is malformed, forged, expired or not yet valid. Its message is safe to show. */
export class InvalidToken extends Error {}

/** Operator settings for tokens (`[auth]`); all optional: the data dir's HS256 secret is the default. */
export interface TokenSettings {
  /** PEM public key: tokens are then verified as RS256 (and only RS256). */
  rs256PublicKey?: string;
  /** PEM private key (PKCS#8): tokens are then minted as RS256. */
  rs256SecretKey?: string;
  boundIssuer?: string;
  boundAudiences?: string[];
}

export interface MintOptions {
  jti?: string;
  /** The expiry itself (epoch seconds), when the caller has fixed it: then validitySeconds is ignored. */
  exp?: number;
}

/** A verifier for other token kinds (OIDC): returns claims, or null when the token is not its kind. */
export type ExtraVerifier = (token: string, payload: JWTPayload) => Promise<TokenClaims | null>;

/**
 * Mints and verifies Attic-compatible JWTs. HS256: the key is the decoded bytes of a base64 secret,
 * exactly like Attic's `token-hs256-secret-base64` (any non-empty length), so tokens work across both
 * servers. RS256 when PEM keys are configured. jose verifies with WebCrypto (constant-time MACs).
 */
export class TokenAuthority {
  private readonly key: Uint8Array<ArrayBuffer>;
  /** Verifiers tried for tokens whose issuer is not ours (OIDC), set by the server. */
  extra: ExtraVerifier | null = null;

  constructor(secretBase64: string, private readonly settings: TokenSettings = {}) {
    this.key = new Uint8Array(Buffer.from(secretBase64.trim(), "base64"));
    if (this.key.length < 1) throw new Error("token secret must decode to at least one byte");
  }

  private rsPrivate: Promise<CryptoKey> | null = null;
  private rsPublic: Promise<CryptoKey> | null = null;

  async mint(sub: string, validitySeconds: number, caches: CachePermissionClaims, opts: MintOptions = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const rs = this.settings.rs256SecretKey;
    let jwt = new SignJWT({ [ATTIC_CLAIM]: { caches } })
      .setProtectedHeader({ alg: rs ? "RS256" : "HS256", typ: "JWT" })
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(opts.exp ?? now + validitySeconds);
    if (opts.jti) jwt = jwt.setJti(opts.jti);
    if (this.settings.boundIssuer) jwt = jwt.setIssuer(this.settings.boundIssuer);
    if (this.settings.boundAudiences?.length) jwt = jwt.setAudience(this.settings.boundAudiences);
    if (rs) {
      this.rsPrivate ??= importPKCS8(rs, "RS256");
      return jwt.sign(await this.rsPrivate);
    }
    return jwt.sign(this.key);
  }

  /** The HMAC key imported once: importing it on every request was a tenth of an upload's cost. */
  private cryptoKey: Promise<CryptoKey> | null = null;

  private verifyKey(): Promise<CryptoKey> {
    if (this.settings.rs256PublicKey) {
      this.rsPublic ??= importSPKI(this.settings.rs256PublicKey, "RS256");
      return this.rsPublic;
    }
    this.cryptoKey ??= crypto.subtle.importKey("raw", this.key, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    return this.cryptoKey;
  }

  /**
   * Tokens verified recently, keyed by their SHA-256 (the raw token is never kept): a client
   * sends the same token with every request of a push, and checking its MAC each time was a
   * tenth of a small upload's server time. Only good tokens are remembered, each until its
   * expiry, so a cached answer is always the one a fresh check would give. (Revocation is checked
   * by the caller on every request, outside this memory.)
   */
  private readonly verified = new Map<string, TokenClaims>();

  async verify(token: string): Promise<TokenClaims> {
    const digest = Bun.SHA256.hash(token, "base64");
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
      if (this.extra) {
        const payload = unverifiedPayload(token);
        if (payload && payload.iss !== undefined && payload.iss !== this.settings.boundIssuer) {
          const claims = await this.extra(token, payload);
          if (claims) return claims;
        }
      }
      const alg = this.settings.rs256PublicKey ? "RS256" : "HS256";
      const { payload } = await jwtVerify(token, await this.verifyKey(), {
        algorithms: [alg],
        issuer: this.settings.boundIssuer,
        audience: this.settings.boundAudiences?.length ? this.settings.boundAudiences : undefined,
      });
      if (typeof payload.sub !== "string" || typeof payload.exp !== "number") {
        throw new InvalidToken("token lacks sub or exp");
      }
      const attic = payload[ATTIC_CLAIM] as { caches?: unknown } | undefined;
      const caches = attic && typeof attic.caches === "object" && attic.caches !== null
        ? (attic.caches as CachePermissionClaims) : {};
      const claims: TokenClaims = { sub: payload.sub, exp: payload.exp, caches };
      if (typeof payload.jti === "string" && payload.jti.length <= 128) claims.jti = payload.jti;
      if (typeof payload.iss === "string") claims.iss = payload.iss;
      if (typeof payload.iat === "number") claims.iat = payload.iat;
      if (payload.aud !== undefined) claims.aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      return claims;
    } catch (err) {
      throw asInvalidToken(err);
    }
  }
}

/**
 * jose's errors as the one safe-to-show InvalidToken, saying which check failed (the request log
 * and the client show it; it never quotes the token).
 */
export function asInvalidToken(err: unknown): InvalidToken {
  if (err instanceof InvalidToken) return err;
  if (err instanceof joseErrors.JWTExpired) return new InvalidToken("token has expired");
  if (err instanceof joseErrors.JWTClaimValidationFailed) return new InvalidToken(`token rejected: ${err.message}`);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new InvalidToken("token has a bad signature (signed with another secret or key: another server, or an older secret)");
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new InvalidToken("token is signed with an algorithm this server does not accept");
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return new InvalidToken("token is malformed (not a JWT)");
  return new InvalidToken("token is invalid");
}

/** The payload of a JWT without checking it: only to choose which key checks it. */
export function unverifiedPayload(token: string): JWTPayload | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return value && typeof value === "object" && !Array.isArray(value) ? (value as JWTPayload) : null;
  } catch {
    return null;
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
