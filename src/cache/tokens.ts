import { randomUUID } from "node:crypto";
import { GarretError } from "../errors.ts";
import { narrowClaims, PERMISSION_LETTERS, type CachePermissionClaims, type Permission } from "../auth/permissions.ts";
import type { TokenAuthority } from "../auth/token.ts";
import type { MetaStore } from "../db/types.ts";
import type { PermissionName, TokenExchangeAnswer, TokenExchangeRequest, WhoamiAnswer } from "../api/garret.ts";
import pkg from "../../package.json" with { type: "json" };
import { claimsOf, RejectedToken, type Caller } from "./access.ts";
import type { Garret } from "./context.ts";
import { recordAudit } from "./audit.ts";

/** Exchanged tokens live at most this long (the caller's own expiry bounds them too). */
export const MAX_EXCHANGE_SECONDS = 366 * 86400;

/**
 * Mints a token with a fresh id and records it in the registry (never the token itself) and the
 * audit log (`actor`: the exchanging caller, or "cli:USER" for `garret token create`).
 */
export async function mintRegistered(
  meta: MetaStore, tokens: TokenAuthority, sub: string, validitySeconds: number, caches: CachePermissionClaims,
  actor: Caller | string, notAfter = Infinity,
): Promise<{ token: string; id: string; expiresAt: number }> {
  const id = randomUUID();
  const createdAt = Math.floor(Date.now() / 1000);
  // One clock reading for the registry and the token: read twice, a second could pass between.
  const expiresAt = Math.min(createdAt + validitySeconds, notAfter);
  await meta.recordToken({ id, sub, permissions: JSON.stringify(caches), expiresAt, createdAt });
  const token = await tokens.mint(sub, validitySeconds, caches, { jti: id, exp: expiresAt });
  await recordAudit({ meta }, actor, "token.mint", `token:${id}`, `sub ${sub}`);
  return { token, id, expiresAt };
}

function parseRequest(body: unknown): TokenExchangeRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  const v = b.validity_seconds;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new GarretError("RequestError", "validity_seconds must be a positive integer");
  }
  if (b.caches !== undefined && (!Array.isArray(b.caches) || !b.caches.every((c) => typeof c === "string"))) {
    throw new GarretError("RequestError", "caches must be a list of cache names or patterns");
  }
  if (b.pull_only !== undefined && typeof b.pull_only !== "boolean") throw new GarretError("RequestError", "pull_only must be true or false");
  return { validity_seconds: v, caches: b.caches as string[] | undefined, pull_only: b.pull_only as boolean | undefined };
}

/**
 * Trades the caller's token for a shorter-lived one for the same sub with at most its rights (a CI
 * job's logs then never hold the long-lived secret; `garret use` writes a pull-only one to netrc).
 */
export async function exchangeToken(g: Garret, caller: Caller, body: unknown): Promise<TokenExchangeAnswer> {
  if (caller instanceof RejectedToken) throw new GarretError("Unauthorized", caller.reason);
  const claims = claimsOf(caller);
  if (!claims) throw new GarretError("Unauthorized", "This needs a token; send one with Authorization: Bearer.");
  const req = parseRequest(body);
  const now = Math.floor(Date.now() / 1000);
  const validity = Math.min(req.validity_seconds, MAX_EXCHANGE_SECONDS, claims.exp - now);
  if (validity < 1) throw new GarretError("Unauthorized", "token has expired");
  const caches = narrowClaims(claims.caches, req.caches ?? null, req.pull_only === true);
  if (Object.keys(caches).length === 0) throw new GarretError("Forbidden", "Your token grants nothing on those caches.");
  // Bounded by the caller's own expiry as such, not only through `validity`: the clock may tick
  // between here and the mint (a token then outlived its parent by a second).
  const minted = await mintRegistered(g.meta, g.tokens, claims.sub, validity, caches, caller, claims.exp);
  return { token: minted.token, id: minted.id, expires_at: minted.expiresAt };
}

/** Each permission's name as a `garret token create` flag. */
const PERMISSION_NAMES: Record<keyof Permission, PermissionName> = {
  pull: "pull", push: "push", delete: "delete", createCache: "create-cache", configureCache: "configure-cache",
  configureCacheRetention: "configure-cache-retention", destroyCache: "destroy-cache",
};

/**
 * What the caller's token is: its sub, id, expiry and grants (`garret whoami`, and `garret login`
 * checking a token before saving it). A refused token is told why.
 */
export function describeCaller(caller: Caller): WhoamiAnswer {
  if (caller instanceof RejectedToken) throw new GarretError("Unauthorized", caller.reason);
  const claims = claimsOf(caller);
  if (!claims) return { server: "garret", version: pkg.version, token: null };
  const permissions = Object.entries(claims.caches).map(([pattern, letters]) => ({
    pattern,
    allows: (Object.entries(PERMISSION_LETTERS) as [keyof Permission, string][])
      .filter(([, letter]) => letters[letter] === 1 || letters[letter] === true).map(([key]) => PERMISSION_NAMES[key]),
  }));
  return {
    server: "garret", version: pkg.version,
    token: {
      sub: claims.sub, id: claims.jti ?? null, expires_at: claims.exp, issued_at: claims.iat ?? null,
      oidc_issuer: claims.oidcIssuer ?? null, permissions,
    },
  };
}
