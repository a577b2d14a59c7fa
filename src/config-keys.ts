/**
 * Every key the server's config file takes, with its GARRET_* variable and what it means. The
 * loader (src/config.ts) reports any other key with the nearest known one; adding a setting is
 * one row here plus its reading in serverConfig.
 */
import { editDistance } from "./suggest.ts";
export interface ConfigKey {
  /** Full dotted key: `gc.retention` is `retention` in the `[gc]` table. */
  key: string;
  env?: string;
  /** The flag of `garret serve` (and gc where it applies), without dashes. */
  flag?: string;
  doc: string;
}

export const CONFIG_KEYS: readonly ConfigKey[] = [
  { key: "listen", env: "GARRET_LISTEN", flag: "listen", doc: "HOST:PORT to listen on" },
  { key: "data-dir", env: "GARRET_DATA", flag: "data", doc: "data directory (database, token secret, local storage)" },
  { key: "public-url", env: "GARRET_PUBLIC_URL", flag: "public-url", doc: "URL clients reach the server at" },
  { key: "compression.type", env: "GARRET_COMPRESSION", flag: "compression", doc: "zstd, xz, br or none" },
  { key: "compression.level", env: "GARRET_COMPRESSION_LEVEL", flag: "compression-level", doc: "compression level" },
  { key: "storage.type", env: "GARRET_STORAGE_TYPE", doc: "local or s3" },
  { key: "storage.path", env: "GARRET_STORAGE_PATH", doc: "local storage directory" },
  { key: "storage.bucket", env: "GARRET_S3_BUCKET", doc: "S3 bucket" },
  { key: "storage.endpoint", env: "GARRET_S3_ENDPOINT", doc: "S3 endpoint URL" },
  { key: "storage.region", env: "GARRET_S3_REGION", doc: "S3 region" },
  { key: "storage.prefix", env: "GARRET_S3_PREFIX", doc: "key prefix in the bucket, ending in /" },
  { key: "storage.access-key-id", env: "GARRET_S3_ACCESS_KEY_ID", doc: "S3 access key id" },
  { key: "storage.secret-access-key", env: "GARRET_S3_SECRET_ACCESS_KEY", doc: "S3 secret access key" },
  { key: "storage.force-path-style", env: "GARRET_S3_FORCE_PATH_STYLE", doc: "path-style bucket URLs" },
  { key: "storage.max-attempts", env: "GARRET_S3_MAX_ATTEMPTS", doc: "attempts per S3 request" },
  { key: "storage.download-redirect", env: "GARRET_S3_DOWNLOAD_REDIRECT", doc: "redirect NAR downloads to presigned URLs" },
  { key: "storage.redirect-ttl", env: "GARRET_S3_REDIRECT_TTL", doc: "lifetime of a presigned URL (duration)" },
  { key: "database.url", env: "GARRET_DATABASE_URL", flag: "database-url", doc: "sqlite://PATH or postgres://…" },
  { key: "database.pool-size", env: "GARRET_DATABASE_POOL_SIZE", doc: "PostgreSQL connections" },
  { key: "log-format", env: "GARRET_LOG_FORMAT", flag: "log-format", doc: "request log lines: text or json" },
  { key: "metrics.token", env: "GARRET_METRICS_TOKEN", doc: "token /metrics requires, if set" },
  { key: "auth.hs256-secret-base64", env: "GARRET_TOKEN_HS256_SECRET_BASE64", doc: "HS256 token secret, base64 (Attic's token-hs256-secret-base64); default: the data dir's token-secret" },
  { key: "auth.rs256-public-key", env: "GARRET_TOKEN_RS256_PUBLIC_KEY", doc: "RS256 public key (PEM, or a file path): tokens are verified as RS256" },
  { key: "auth.rs256-secret-key", env: "GARRET_TOKEN_RS256_SECRET_KEY", doc: "RS256 private key (PKCS#8 PEM, or a file path): tokens are minted as RS256" },
  { key: "auth.bound-issuer", env: "GARRET_TOKEN_BOUND_ISSUER", doc: "tokens must carry this iss (minted ones get it)" },
  { key: "auth.bound-audiences", doc: "tokens must carry one of these aud (minted ones get them)" },
  { key: "auth.oidc", doc: "[[auth.oidc]]: trusted OIDC issuer, audience and rules mapping claims to cache permissions" },
  { key: "gc.retention", env: "GARRET_RETENTION", flag: "retention", doc: "default retention of caches on Global (duration; 0 keeps forever)" },
  { key: "gc.grace", env: "GARRET_GC_GRACE", flag: "gc-grace", doc: "age of crash leftovers before they go (duration)" },
  { key: "gc.compact-threshold", env: "GARRET_GC_COMPACT_THRESHOLD", flag: "compact-threshold", doc: "live fraction under which a pack is compacted" },
  { key: "gc.interval", env: "GARRET_GC_INTERVAL", flag: "gc-interval", doc: "time between collections in serve (duration; 0 = off)" },
  { key: "upload.staging-quota", env: "GARRET_UPLOAD_STAGING_QUOTA", doc: "NAR bytes one token may hold staged by nix copy PUTs (bytes, or 500MB, 10GiB)" },
  { key: "upload.staging-ttl", env: "GARRET_UPLOAD_STAGING_TTL", doc: "how long a staged NAR waits for its narinfo (duration)" },
  { key: "upload.max-nar-size", env: "GARRET_UPLOAD_MAX_NAR_SIZE", doc: "largest NAR one upload may be, decoded (bytes, or 500MB, 64GiB; 0 = no limit)" },
];

/** The nearest of `known` to `word`, if it is near enough to be a typo. */
export function nearest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(word, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  if (best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3))) return best;
  // A known key with a word glued on (listen-adress, storage.bucket-name) is the likely meaning.
  return known.filter((k) => word.startsWith(k) && /[-_.]/.test(word[k.length] ?? ""))
    .sort((a, b) => b.length - a.length)[0];
}

type Table = Record<string, unknown>;

/** The full keys in a parsed file that no row above names ("listen-adress: unknown key; did you mean listen?"). */
export function unknownKeys(file: Table): string[] {
  const known = CONFIG_KEYS.map((k) => k.key);
  const tables = new Set(known.filter((k) => k.includes(".")).map((k) => k.split(".")[0]!));
  const problems: string[] = [];
  const walk = (node: Table, prefix: string): void => {
    for (const [name, value] of Object.entries(node)) {
      const full = prefix + name;
      if (value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Date) && tables.has(full)) {
        walk(value as Table, `${full}.`);
        continue;
      }
      if (known.includes(full)) continue;
      const guess = nearest(full, known) ?? (prefix === "" ? nearest(name, [...tables]) : undefined);
      problems.push(`${full}: unknown key${guess ? `; did you mean ${guess}?` : ""}`);
    }
  };
  walk(file, "");
  return problems;
}
