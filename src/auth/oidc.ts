import { createRemoteJWKSet, jwtVerify, type JWTPayload } from "jose";
import { asInvalidToken, type TokenClaims } from "./token.ts";
import type { CachePermissionClaims } from "./permissions.ts";

/**
 * One rule of an OIDC trust: when every claim it names matches (exact, or a glob with `*`), the
 * token gets `caches` (Attic's claim shape, patterns in rule order). Rules are tried in order and
 * their grants merged, first pattern first (so the earlier rule decides where patterns overlap).
 */
export interface OidcRule {
  /** Claim name → expected value or glob, e.g. {repository: "org/repo", ref: "refs/heads/main"}. */
  match: Record<string, string>;
  caches: CachePermissionClaims;
}

/** `[[auth.oidc]]`: an external issuer (GitHub Actions, GitLab CI) trusted for CI pushes. */
export interface OidcTrust {
  issuer: string;
  audience: string;
  rules: OidcRule[];
}

function globMatches(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join(".*")}$`);
  return re.test(value);
}

/** The grant of `trust`'s rules for a verified payload (empty when none matches). */
export function grantFor(trust: OidcTrust, payload: JWTPayload): CachePermissionClaims {
  const caches: CachePermissionClaims = {};
  for (const rule of trust.rules) {
    const ok = Object.entries(rule.match).every(([claim, want]) => {
      const have = payload[claim];
      return typeof have === "string" && globMatches(want, have);
    });
    if (!ok) continue;
    for (const [pattern, letters] of Object.entries(rule.caches)) caches[pattern] ??= letters;
  }
  return caches;
}

/**
 * Verifies tokens of the configured OIDC issuers. Each issuer's JWKS URI comes from its discovery
 * document (fetched once, retried after a failure); jose's remote key set caches the keys and
 * refetches when a token names an unknown key id.
 */
export class OidcVerifier {
  private readonly keySets = new Map<string, Promise<ReturnType<typeof createRemoteJWKSet>>>();

  constructor(private readonly trusts: OidcTrust[]) {}

  private keySet(issuer: string): Promise<ReturnType<typeof createRemoteJWKSet>> {
    let set = this.keySets.get(issuer);
    if (!set) {
      set = (async () => {
        const res = await fetch(`${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`);
        if (!res.ok) throw new Error(`OIDC discovery for ${issuer}: HTTP ${res.status}`);
        const doc = (await res.json()) as { jwks_uri?: unknown };
        if (typeof doc.jwks_uri !== "string") throw new Error(`OIDC discovery for ${issuer}: no jwks_uri`);
        return createRemoteJWKSet(new URL(doc.jwks_uri));
      })();
      set.catch(() => this.keySets.delete(issuer));
      this.keySets.set(issuer, set);
    }
    return set;
  }

  /** Claims for a token from a trusted issuer; null when `payload.iss` is not one of them. */
  verify = async (token: string, payload: JWTPayload): Promise<TokenClaims | null> => {
    const trust = this.trusts.find((t) => t.issuer === payload.iss);
    if (!trust) return null;
    try {
      const keys = await this.keySet(trust.issuer);
      const { payload: p } = await jwtVerify(token, keys, { issuer: trust.issuer, audience: trust.audience, algorithms: ["RS256", "ES256", "PS256", "EdDSA"] });
      if (typeof p.sub !== "string" || typeof p.exp !== "number") throw new Error("no sub or exp");
      const claims: TokenClaims = { sub: p.sub, exp: p.exp, caches: grantFor(trust, p), iss: trust.issuer, oidcIssuer: trust.issuer };
      if (typeof p.jti === "string") claims.jti = p.jti;
      if (typeof p.iat === "number") claims.iat = p.iat;
      return claims;
    } catch (err) {
      throw asInvalidToken(err);
    }
  };
}
