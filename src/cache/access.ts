import { expectedError, GarretError } from "../errors.ts";
import { hasAny, NO_PERMISSION, permissionFor, type Permission } from "../auth/permissions.ts";
import type { TokenClaims } from "../auth/token.ts";
import type { CacheRecord } from "../db/types.ts";
import type { Garret } from "./context.ts";

export const CACHE_NAME = /^[A-Za-z0-9][A-Za-z0-9\-_+]{0,49}$/;

/**
 * A token was sent but failed verification (expired, forged, unknown key). As in Attic, reads go
 * on as anonymous, so a stale token in a netrc does not stop Nix substituting from public caches;
 * everything else is refused as unauthorised, whatever the cache, so the refusal reveals nothing.
 */
export class RejectedToken {
  /** `readsAnonymously` false: a revoked token, refused on every endpoint, public reads included. */
  constructor(readonly reason: string, readonly readsAnonymously = true) {}
}

/** Who is asking: the verified token claims, a rejected token, or null for anonymous. */
export type Caller = TokenClaims | RejectedToken | null;

/** The verified claims of a caller, or null (anonymous, or a token that failed verification). */
export function claimsOf(caller: Caller): TokenClaims | null {
  return caller instanceof RejectedToken ? null : caller;
}

/** Operations a caller with a rejected token may still do, anonymously. */
const READS: ReadonlySet<keyof Permission | "any"> = new Set(["pull", "any"]);

/** A rejected token asking for more than a read is refused before any cache is looked at. */
function refuseRejected(caller: Caller, need: keyof Permission | "any"): void {
  if (caller instanceof RejectedToken && (!caller.readsAnonymously || !READS.has(need))) throw new GarretError("Unauthorized", caller.reason);
}

// One message for "missing" and "hidden", so a private cache is indistinguishable from none.
export const noSuchCache = (): GarretError => expectedError("NoSuchCache", "The requested cache does not exist.");

export function assertCacheName(name: string): void {
  if (!CACHE_NAME.test(name)) {
    throw new GarretError("InvalidCacheName", "Cache names are 1-50 characters of A-Z a-z 0-9 - _ +, starting with a letter or digit.");
  }
}

export function effectivePermission(caller: Caller, cache: CacheRecord | null, name: string): Permission {
  const claims = claimsOf(caller);
  const p = claims ? permissionFor(claims.caches, name) : NO_PERMISSION;
  return cache?.isPublic ? { ...p, pull: true } : p;
}

// Said only to callers who may see the cache, so naming it and the permission reveals nothing.
function denied(caller: Caller, need?: keyof Permission, name?: string): GarretError {
  return claimsOf(caller)
    ? new GarretError("Forbidden", need && name ? `Your token lacks ${need} on ${name}.` : "Your token does not allow this on this cache.")
    : new GarretError("Unauthorized", "This needs a token; send one with Authorization: Bearer.");
}

/**
 * Loads a cache for an operation that needs `need` ("any": reading its public settings, which
 * Attic's client does before a push with a push-only token). A caller with no permission at all on a
 * private cache gets exactly the answer for a missing cache; one who can see it but lacks `need`
 * learns only that they are not allowed.
 */
export async function authorize(g: Garret, caller: Caller, name: string, need: keyof Permission | "any"): Promise<CacheRecord> {
  assertCacheName(name);
  refuseRejected(caller, need);
  const cache = await g.meta.getCache(name);
  const perm = effectivePermission(caller, cache, name);
  if (!cache || !hasAny(perm)) throw noSuchCache();
  if (need !== "any" && !perm[need]) throw denied(caller, need, name);
  return cache;
}

/** For cache creation, where the cache must not exist yet. */
export async function authorizeCreate(g: Garret, caller: Caller, name: string): Promise<void> {
  assertCacheName(name);
  refuseRejected(caller, "createCache");
  const perm = effectivePermission(caller, null, name);
  if (!perm.createCache) throw denied(caller);
  // A name is taken or not; only those allowed to create under it can ask.
  if (await g.meta.getCache(name)) throw new GarretError("CacheAlreadyExists", `Cache ${name} already exists.`);
}
