/** garret's own /_api/v1 endpoints beyond Attic's: paths, request and answer types, defined once. */

export const GARRET_PATHS = {
  pins: (cache: string) => `/_api/v1/pins/${encodeURIComponent(cache)}`,
  pin: (cache: string, name: string) => `/_api/v1/pins/${encodeURIComponent(cache)}/${encodeURIComponent(name)}`,
  path: (cache: string, hash: string) => `/_api/v1/paths/${encodeURIComponent(cache)}/${encodeURIComponent(hash)}`,
  /** GET, query uploaded_by=SUB or token_id=ID: the cache's pushes. */
  cacheLog: (cache: string) => `/_api/v1/cache-log/${encodeURIComponent(cache)}`,
  /** POST PurgeRequest: hides an uploader's paths and their dependants. */
  cachePurge: (cache: string) => `/_api/v1/cache-purge/${encodeURIComponent(cache)}`,
  /** POST PurgeRequest: the same in every cache the caller may configure (--all-caches). */
  purgeAll: "/_api/v1/cache-purge",
  tokenExchange: "/_api/v1/token-exchange",
  /** GET: what the caller's token is (WhoamiAnswer); 401 with the reason for a refused token. */
  whoami: "/_api/v1/whoami",
} as const;

/** Permission names as `garret token create` spells its flags. */
export type PermissionName = "pull" | "push" | "delete" | "create-cache" | "configure-cache" | "configure-cache-retention" | "destroy-cache";

export interface WhoamiAnswer {
  /** Always "garret": tells a client it reached a garret server, not some other service at that URL. */
  server: "garret";
  version: string;
  /** Null when no token was sent (anonymous: public caches only). */
  token: WhoamiToken | null;
}

export interface WhoamiToken {
  sub: string;
  /** The registry id (jti), when the token has one. */
  id: string | null;
  /** Unix seconds. */
  expires_at: number;
  issued_at: number | null;
  /** The issuer, for a token from a trusted OIDC provider. */
  oidc_issuer: string | null;
  /** In the token's own order: where patterns overlap, the first that matches a cache decides. */
  permissions: { pattern: string; allows: PermissionName[] }[];
}

/** One push (issue 16 provenance). Times in seconds since the epoch. */
export interface PushView {
  store_path: string;
  /** The token's sub. */
  uploaded_by: string | null;
  /** The token's id (jti), when it had one. */
  token_id: string | null;
  /** The client address the push came from (a proxy's, behind one). */
  client: string | null;
  pushed_at: number;
}

export interface CacheLogAnswer {
  pushes: PushView[];
}

/** Exactly one of uploaded_by and token_id. since: seconds since the epoch (pushes at or after). */
export interface PurgeRequest {
  uploaded_by?: string;
  token_id?: string;
  since?: number;
  dry_run?: boolean;
}

/** --all-caches: per cache where the uploader had paths. */
export interface PurgeAllAnswer {
  dry_run: boolean;
  caches: Record<string, PurgeAnswer>;
}

export interface PurgeAnswer {
  dry_run: boolean;
  /** Pushed by the uploader. */
  purged: string[];
  /** Paths of others that depend on a purged path (a cache never serves a path without its closure). */
  dependants: string[];
}

/**
 * `POST /_api/v1/token-exchange` with the caller's token: a new token for the same sub with at most
 * the caller's rights, expiring at the earlier of `validity_seconds` from now and the caller's own expiry.
 */
export interface TokenExchangeRequest {
  validity_seconds: number;
  /** Cache names or patterns to keep (default: all of the caller's). */
  caches?: string[];
  /** Keep only pull. */
  pull_only?: boolean;
}

export interface TokenExchangeAnswer {
  token: string;
  /** The new token's registry id. */
  id: string;
  /** Unix seconds. */
  expires_at: number;
}

export interface PinView {
  name: string;
  store_path: string;
  /** Who pinned it: only for callers who may configure the cache (a public cache's readers do not learn its uploaders). */
  created_by?: string | null;
  created_at: number;
}

export interface PinRequest {
  store_path: string;
}

export interface PinsAnswer {
  pins: PinView[];
}

// --- The dashboard's reads (issue 14). Sizes in bytes, times in seconds since the epoch.

export const DASHBOARD_PATHS = {
  caches: "/_api/v1/caches",
  cacheStats: (cache: string) => `/_api/v1/caches/${encodeURIComponent(cache)}/stats`,
  cachePaths: (cache: string) => `/_api/v1/caches/${encodeURIComponent(cache)}/paths`,
  cachePath: (cache: string, hash: string) => `/_api/v1/caches/${encodeURIComponent(cache)}/paths/${encodeURIComponent(hash)}`,
  serverStats: "/_api/v1/server/stats",
} as const;

export interface CacheStatsView {
  paths: number;
  /** Logical bytes: the sum of the NAR sizes of its paths. */
  nar_bytes: number;
  /** Stored (compressed) bytes of its distinct NARs. */
  stored_bytes: number;
  /** nar_bytes / stored_bytes (1 for an empty cache). */
  dedup_ratio: number;
  last_push_at: number | null;
}

export interface CacheSummary extends CacheStatsView {
  name: string;
  is_public: boolean;
  priority: number;
}

export interface CachesAnswer {
  caches: CacheSummary[];
}

export interface CacheStatsAnswer extends CacheStatsView {
  name: string;
  substituter_endpoint: string;
  public_key: string;
  is_public: boolean;
  priority: number;
  store_dir: string;
  /** Seconds, or null for the server default. */
  retention_period: number | null;
  quota_bytes: number | null;
  /** Bytes pushed per UTC day over the last 90 days. */
  history: { day: number; nar_bytes: number; stored_bytes: number }[];
}

export interface PathSummary {
  store_path: string;
  hash: string;
  nar_size: number;
  file_size: number;
  created_at: number;
  /** Who pushed it: only for callers who may configure the cache. */
  created_by?: string | null;
}

export interface PathsAnswer {
  paths: PathSummary[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

export interface PathAnswer {
  store_path: string;
  hash: string;
  nar_hash: string; // sha256:<nix base32>
  nar_size: number;
  file_size: number;
  compression: string;
  references: string[]; // basenames
  referrers: string[]; // basenames, at most 1000
  deriver: string | null;
  system: string | null;
  ca: string | null;
  sigs: string[];
  /** Sum of NAR sizes over the closure as far as this cache holds it; closure_paths counts them. */
  closure_size: number;
  closure_paths: number;
  /** Relative to the substituter URL. */
  nar_url: string;
  narinfo_url: string;
}

export interface ServerStatsAnswer {
  version: string;
  uptime_seconds: number;
  storage: string;
  database: string;
  caches: number;
  paths: number;
  nar_bytes: number;
  unique_nar_bytes: number;
  nars: number;
  chunks: number;
  chunk_bytes: number;
  stored_bytes: number;
  packs: number;
  pack_bytes: number;
  dedup_ratio: number;
  /** The last collections this server process ran, newest first (at most 10). */
  gc_runs: { at: number; result: "ok" | "failed"; freed_bytes: number; objects: number; chunks: number; packs: number }[];
}
