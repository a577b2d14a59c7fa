import { recordAudit } from "./audit.ts";
import { GarretError } from "../errors.ts";
import { formatSecretKey, generateSecretKey, parseSecretKey } from "../nix/signing.ts";
import { cacheKey } from "./keys.ts";
import { DEFAULT_STORE_DIR, isValidStoreDir } from "../nix/store-path.ts";
import type { CachePatch, CacheRecord } from "../db/types.ts";
import { authorize, authorizeCreate, effectivePermission, noSuchCache, type Caller } from "./access.ts";
import { forgetCacheList } from "./dedup-view.ts";
import type { Garret } from "./context.ts";
import type { CacheConfigView, RetentionPeriod } from "../api/attic.ts";

export const DEFAULT_UPSTREAM_KEYS = ["cache.nixos.org-1"];
export const DEFAULT_PRIORITY = 41;

export type { CacheConfigView, RetentionPeriod };

export function publicKeyOf(cache: CacheRecord): string {
  return cacheKey(cache).publicKey;
}

/**
 * The origin a request reached the server at (`http://host:port`, built by the route from a Host
 * header it checked), used for advertised endpoints when no public URL is configured (as Attic
 * does): listening on 0.0.0.0 or [::1] must not advertise those addresses.
 */
export type RequestOrigin = string & { readonly __origin: unique symbol };

export function cacheConfigView(g: Garret, cache: CacheRecord, origin: RequestOrigin | null = null): CacheConfigView {
  const base = g.publicUrlConfigured === false && origin ? origin : g.publicUrl;
  return {
    substituter_endpoint: `${base}/${cache.name}`,
    api_endpoint: `${base}/`,
    public_key: publicKeyOf(cache),
    is_public: cache.isPublic,
    store_dir: cache.storeDir,
    priority: cache.priority,
    upstream_cache_key_names: cache.upstreamCacheKeyNames,
    retention_period: cache.retentionPeriod === null ? "Global" : { Period: cache.retentionPeriod },
    quota_bytes: cache.quotaBytes,
  };
}

type Json = Record<string, unknown>;

export const MAX_RETENTION_SECONDS = 2 ** 32 - 1;

function field<T>(body: Json, key: string, check: (v: unknown) => v is T, what: string): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw new GarretError("RequestError", `${key} must be ${what}`);
  return v;
}

const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isString = (v: unknown): v is string => typeof v === "string";
// store_dir is rendered into nix-cache-info and narinfo: a line break would add fields there.
const isStoreDir = (v: unknown): v is string => typeof v === "string" && isValidStoreDir(v);
const STORE_DIR = "an absolute path such as /nix/store (letters, digits and + - . _ =, no trailing slash)";
// Key names as Nix writes them before the colon of a key or signature.
const isKeyNameList = (v: unknown): v is string[] =>
  Array.isArray(v) && v.length <= 64 && v.every((x) => typeof x === "string" && /^[A-Za-z0-9._+-]{1,128}$/.test(x));
const KEY_NAMES = "a list of key names such as cache.nixos.org-1";

function parseRetention(v: unknown): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === "Global") return null;
  if (v && typeof v === "object" && isInt((v as Json).Period) && ((v as Json).Period as number) >= 0) {
    // Attic's client reads the period as a u32: a larger one breaks attic push/use/cache info.
    if (((v as Json).Period as number) > MAX_RETENTION_SECONDS) {
      throw new GarretError("RequestError", `retention_period: at most ${MAX_RETENTION_SECONDS} seconds (2^32-1, what Attic's client can read)`);
    }
    return (v as Json).Period as number;
  }
  throw new GarretError("RequestError", 'retention_period must be "Global" or {"Period": seconds}');
}

/** quota_bytes: a non-negative integer, or null to remove the quota. */
function parseQuota(body: Json): number | null | undefined {
  if (!("quota_bytes" in body)) return undefined;
  const v = body.quota_bytes;
  if (v === null) return null;
  if (isInt(v) && v >= 0) return v;
  throw new GarretError("RequestError", "quota_bytes must be a non-negative integer or null");
}

/** Resolves the `keypair` field: "Generate" or {"Keypair": "<nix secret key>"}. */
async function resolveKeypair(v: unknown, cacheName: string): Promise<string | undefined> {
  if (v === undefined) return undefined;
  if (v === "Generate") return formatSecretKey(await generateSecretKey(`${cacheName}-1`));
  if (v && typeof v === "object" && isString((v as Json).Keypair)) {
    try {
      return formatSecretKey(parseSecretKey((v as Json).Keypair as string));
    } catch {
      throw new GarretError("RequestError", "keypair.Keypair is not a valid Nix secret key");
    }
  }
  throw new GarretError("RequestError", 'keypair must be "Generate" or {"Keypair": "<secret key>"}');
}

function parsePriority(body: Json): number | undefined {
  const p = field(body, "priority", isInt, "an integer");
  if (p !== undefined && (p < 0 || p > 10000)) throw new GarretError("RequestError", "priority must be 0..10000");
  return p;
}

export async function createCache(g: Garret, caller: Caller, name: string, body: Json): Promise<CacheRecord> {
  await authorizeCreate(g, caller, name);
  const retention = parseRetention(body.retention_period);
  const quota = parseQuota(body);
  if ((retention !== undefined || quota !== undefined) && !effectivePermission(caller, null, name).configureCacheRetention) {
    throw new GarretError("Forbidden", "Setting retention_period or quota_bytes needs the configure-cache-retention permission.");
  }
  const created = await g.meta.createCache({
    name,
    isPublic: field(body, "is_public", isBool, "a boolean") ?? false,
    storeDir: field(body, "store_dir", isStoreDir, STORE_DIR) ?? DEFAULT_STORE_DIR,
    priority: parsePriority(body) ?? DEFAULT_PRIORITY,
    upstreamCacheKeyNames: field(body, "upstream_cache_key_names", isKeyNameList, KEY_NAMES) ?? DEFAULT_UPSTREAM_KEYS,
    signingKey: (await resolveKeypair(body.keypair ?? "Generate", name))!,
    retentionPeriod: retention ?? null,
    quotaBytes: quota ?? null,
  });
  forgetCacheList(g);
  await recordAudit(g, caller, "cache.create", name, created.isPublic ? "public" : "private");
  return created;
}

export async function configureCache(g: Garret, caller: Caller, name: string, body: Json): Promise<CacheRecord> {
  const retention = parseRetention(body.retention_period);
  const quota = parseQuota(body);
  const others = Object.keys(body).filter((k) => k !== "retention_period" && k !== "quota_bytes");
  let cache = await authorize(g, caller, name, others.length > 0 ? "configureCache" : "configureCacheRetention");
  if ((retention !== undefined || quota !== undefined) && others.length > 0) cache = await authorize(g, caller, name, "configureCacheRetention");
  const patch: CachePatch = {
    isPublic: field(body, "is_public", isBool, "a boolean"),
    storeDir: field(body, "store_dir", isStoreDir, STORE_DIR),
    priority: parsePriority(body),
    upstreamCacheKeyNames: field(body, "upstream_cache_key_names", isKeyNameList, KEY_NAMES),
    signingKey: await resolveKeypair(body.keypair, name),
    retentionPeriod: retention,
    quotaBytes: quota,
  };
  const updated = await g.meta.updateCache(cache, patch);
  forgetCacheList(g);
  if (!updated) throw noSuchCache();
  // The names of the settings changed, never their values (a keypair is a secret).
  await recordAudit(g, caller, "cache.configure", name, Object.keys(body).filter((k) => /^[a-z_]{1,40}$/.test(k)).sort().join(","));
  return updated;
}

export async function destroyCache(g: Garret, caller: Caller, name: string): Promise<void> {
  const cache = await authorize(g, caller, name, "destroyCache");
  const deleted = await g.meta.deleteCache(cache);
  forgetCacheList(g);
  if (!deleted) throw noSuchCache();
  await recordAudit(g, caller, "cache.destroy", name);
}
