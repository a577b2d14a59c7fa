/**
 * Attic-compatible permissions. A token's claim `https://jwt.attic.rs/v1` holds
 * `{"caches": {"<name or glob>": {"r":1,"w":1,...}}}`; absent letters are false.
 */

export const ATTIC_CLAIM = "https://jwt.attic.rs/v1";

export interface Permission {
  pull: boolean;
  push: boolean;
  delete: boolean;
  createCache: boolean;
  configureCache: boolean;
  configureCacheRetention: boolean;
  destroyCache: boolean;
}

/** Claim letter of each permission, as Attic writes them. */
export const PERMISSION_LETTERS: Record<keyof Permission, string> = {
  pull: "r", push: "w", delete: "d", createCache: "cc", configureCache: "cr",
  configureCacheRetention: "cq", destroyCache: "cd",
};

export const NO_PERMISSION: Permission = Object.freeze({
  pull: false, push: false, delete: false, createCache: false, configureCache: false,
  configureCacheRetention: false, destroyCache: false,
});

export type CachePermissionClaims = Record<string, Record<string, unknown>>;

const CACHE_PATTERN = /^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$/;

export function isValidCachePattern(p: string): boolean {
  return CACHE_PATTERN.test(p);
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[+\-]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`);
}

function fromLetters(letters: Record<string, unknown>): Permission {
  const p = { ...NO_PERMISSION };
  for (const [key, letter] of Object.entries(PERMISSION_LETTERS) as [keyof Permission, string][]) {
    const v = letters[letter];
    p[key] = v === 1 || v === true;
  }
  return p;
}

export function toLetters(p: Partial<Permission>): Record<string, 1> {
  const out: Record<string, 1> = {};
  for (const [key, letter] of Object.entries(PERMISSION_LETTERS) as [keyof Permission, string][]) {
    if (p[key]) out[letter] = 1;
  }
  return out;
}

/**
 * Answers per claims object: the server keeps verified tokens' claims (src/auth/token.ts), so a
 * push's requests share one, and matching its globs once per cache is enough.
 */
const answers = new WeakMap<CachePermissionClaims, Map<string, Permission>>();

/**
 * The permission a token grants on one cache. As in Attic, an exact name wins; otherwise the first
 * matching glob in the token's own claim order (Attic's claims map keeps insertion order, and
 * `atticadm make-token` writes patterns in flag order), without merging. JSON.parse keeps that
 * order for every key that is not an array index, and a glob (it holds `*`) never is one.
 */
export function permissionFor(claims: CachePermissionClaims | null, cache: string): Permission {
  if (!claims) return NO_PERMISSION;
  let known = answers.get(claims);
  if (!known) answers.set(claims, (known = new Map()));
  let p = known.get(cache);
  if (!p) {
    if (known.size >= 1000) known.clear();
    p = Object.freeze(resolvePermission(claims, cache));
    known.set(cache, p);
  }
  return p;
}

function resolvePermission(claims: CachePermissionClaims, cache: string): Permission {
  const exact = Object.hasOwn(claims, cache) ? claims[cache] : undefined;
  if (exact && typeof exact === "object") return fromLetters(exact);
  for (const pattern of Object.keys(claims)) {
    if (!pattern.includes("*") || !isValidCachePattern(pattern)) continue;
    const letters = claims[pattern];
    if (letters && typeof letters === "object" && globToRegExp(pattern).test(cache)) return fromLetters(letters);
  }
  return NO_PERMISSION;
}

export function hasAny(p: Permission): boolean {
  return Object.values(p).some(Boolean);
}

/**
 * Claims for `patterns` that grant no more than `claims` does, on any cache (token exchange).
 * An exact name gets what `claims` grants on it. A glob must be one of `claims`' own and gets only
 * the letters it shares with every glob before it in `claims` (any of those may decide for some name
 * it matches; later ones never do); the exact names of `claims` it matches come along with their own
 * grant, since an exact name decides over any glob. `pullOnly` keeps only r.
 */
export function narrowClaims(claims: CachePermissionClaims, patterns: string[] | null, pullOnly: boolean): CachePermissionClaims {
  const out: CachePermissionClaims = {};
  const keep = (letters: Record<string, 1>): Record<string, 1> => (pullOnly ? (letters.r ? { r: 1 } : {}) : letters);
  const lettersOf = (v: unknown): Record<string, 1> => toLetters(v && typeof v === "object" ? fromLetters(v as Record<string, unknown>) : NO_PERMISSION);
  for (const pattern of patterns ?? Object.keys(claims)) {
    if (!isValidCachePattern(pattern)) continue;
    let letters: Record<string, 1>;
    if (!pattern.includes("*")) {
      letters = toLetters(permissionFor(claims, pattern));
    } else if (!Object.hasOwn(claims, pattern)) {
      letters = {};
    } else {
      const re = globToRegExp(pattern);
      letters = lettersOf(claims[pattern]);
      for (const other of Object.keys(claims)) {
        if (other === pattern) break;
        if (other.includes("*")) letters = shared(letters, lettersOf(claims[other]));
      }
      // Exact names the glob matches keep their own grant (an exact name wins in the new token too).
      for (const other of Object.keys(claims)) {
        if (other.includes("*") || !re.test(other) || Object.hasOwn(out, other)) continue;
        const own = keep(lettersOf(claims[other]));
        out[other] = own;
      }
    }
    const kept = keep(letters);
    if (Object.keys(kept).length > 0) out[pattern] = kept;
  }
  return out;
}

function shared(a: Record<string, 1>, b: Record<string, 1>): Record<string, 1> {
  return Object.fromEntries(Object.keys(a).filter((k) => b[k]).map((k) => [k, 1 as const]));
}
