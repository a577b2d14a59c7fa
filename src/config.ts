import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { DEFAULT_CHUNKING } from "./store/chunker.ts";
import { DEFAULT_INGEST, type IngestOptions } from "./store/ingest.ts";
import { COMPRESSIONS } from "./store/compression.ts";
import { DEFAULT_PART_SIZE, type S3Settings } from "./store/s3.ts";
import type { Compression } from "./db/types.ts";
import { DURATION_HINT, parseDuration } from "./duration.ts";
import { parseSize } from "./size.ts";
import { unknownKeys } from "./config-keys.ts";
import { DEFAULT_GC, type GcOptions } from "./gc/config.ts";
import { DEFAULT_UPLOAD, type UploadLimits } from "./cache/native-push.ts";
import type { TokenSettings } from "./auth/token.ts";
import type { OidcTrust } from "./auth/oidc.ts";

export type StorageConfig = { type: "local"; path: string } | ({ type: "s3" } & S3Settings);

/** Server settings. Precedence: flags > GARRET_* environment > config file > defaults. */
export interface ServerConfig {
  listen: string;
  dataDir: string;
  publicUrl: string | null;
  storage: StorageConfig;
  ingest: IngestOptions;
  /** Metadata database: `url` is sqlite://… or postgres://…; `poolSize` is PostgreSQL's connections. */
  database: { url: string; poolSize: number };
  /** The collector's settings, for `garret gc` and the periodic collection inside serve alike. */
  gc: GcOptions;
  /** The file the settings came from, if any. */
  configFile: string | null;
  /** Request log lines: plain text (default) or one JSON object per line. */
  logFormat: "text" | "json";
  /** When set, /metrics answers only requests bearing this token. */
  metricsToken: string | null;
  /** `[upload]`: staging of native `nix copy` NAR PUTs. */
  upload: UploadLimits;
  /** `[auth]`: token keys and bindings; `hs256SecretBase64` absent = the data dir's generated secret. */
  auth: AuthConfig;
}

export interface AuthConfig extends TokenSettings {
  hs256SecretBase64?: string;
  oidc: OidcTrust[];
}

export const DEFAULT_LISTEN = "127.0.0.1:8080";
export const DEFAULT_DATA_DIR = "./garret-data";
export const DEFAULT_CONFIG_FILE = "./garret.toml";

export interface ServerFlags {
  config?: string;
  listen?: string;
  data?: string;
  publicUrl?: string;
  compression?: string;
  compressionLevel?: string;
  databaseUrl?: string;
  logFormat?: string;
  retention?: string;
  gcGrace?: string;
  gcInterval?: string;
  compactThreshold?: string;
}

/** A setting with a bad value: names the key and the problem in one line. */
export class ConfigError extends Error {}

type Table = Record<string, unknown>;

/** Reads one setting: the flag, else the environment variable, else the file's key. */
class Settings {
  constructor(private readonly file: Table, private readonly env: NodeJS.ProcessEnv) {}

  /** A file value as parsed (tables, arrays). */
  raw(key: string): unknown {
    return this.fromFile(key);
  }

  private fromFile(key: string): unknown {
    let node: unknown = this.file;
    for (const part of key.split(".")) node = (node as Table | undefined)?.[part];
    return node;
  }

  string(key: string, envName: string, flag?: string): string | undefined {
    if (flag !== undefined) return flag;
    const e = this.env[envName];
    if (e !== undefined && e !== "") return e;
    const v = this.fromFile(key);
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw new ConfigError(`${key}: must be a string`);
    return v;
  }

  number(key: string, envName: string, flag?: string): number | undefined {
    const raw = flag ?? this.env[envName] ?? this.fromFile(key);
    if (raw === undefined || raw === "") return undefined;
    const n = typeof raw === "number" ? raw : Number(raw);
    if (!Number.isFinite(n)) throw new ConfigError(`${key}: must be a number, got ${JSON.stringify(raw)}`);
    return n;
  }

  /** A duration in the one grammar (src/duration.ts); a bare TOML number is seconds. */
  duration(key: string, envName: string, flag?: string): number | undefined {
    const raw = flag ?? (this.env[envName] || undefined) ?? this.fromFile(key);
    if (raw === undefined || raw === "") return undefined;
    if (typeof raw !== "string" && typeof raw !== "number") throw new ConfigError(`${key}: expected ${DURATION_HINT}`);
    try {
      return parseDuration(raw, key);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }

  /** A setting that may be a TOML number or a string with a unit, as its text. */
  text(key: string, envName: string): string | undefined {
    const e = this.env[envName];
    if (e !== undefined && e !== "") return e;
    const v = this.fromFile(key);
    if (v === undefined) return undefined;
    if (typeof v !== "string" && typeof v !== "number") throw new ConfigError(`${key}: must be a number or a string`);
    return String(v);
  }

  bool(key: string, envName: string): boolean | undefined {
    const e = this.env[envName];
    if (e !== undefined && e !== "") {
      if (/^(1|true|yes)$/i.test(e)) return true;
      if (/^(0|false|no)$/i.test(e)) return false;
      throw new ConfigError(`${key}: ${envName} must be true or false`);
    }
    const v = this.fromFile(key);
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") throw new ConfigError(`${key}: must be true or false`);
    return v;
  }
}

function readConfigFile(path: string | null): Table {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : (err as Error).message}`);
  }
  try {
    return parseToml(text) as Table;
  } catch (err) {
    throw new ConfigError(`config file ${path}: invalid TOML: ${(err as Error).message.split("\n")[0]}`);
  }
}

function compressionSettings(s: Settings, flags: ServerFlags): Pick<IngestOptions, "compression" | "compressionLevel"> {
  const value = s.string("compression.type", "GARRET_COMPRESSION", flags.compression) ?? DEFAULT_INGEST.compression;
  if (!(COMPRESSIONS as readonly string[]).includes(value)) {
    throw new ConfigError(`compression.type: must be one of ${COMPRESSIONS.join(", ")}, got ${JSON.stringify(value)}`);
  }
  const compression = value as Compression;
  const max = compression === "br" ? 11 : 19;
  const level = s.number("compression.level", "GARRET_COMPRESSION_LEVEL", flags.compressionLevel)
    ?? (compression === "br" ? 5 : DEFAULT_INGEST.compressionLevel);
  if (!Number.isInteger(level) || level < 1 || level > max) {
    throw new ConfigError(`compression.level: must be an integer 1..${max} for ${compression}`);
  }
  return { compression, compressionLevel: level };
}

function storageSettings(s: Settings, dataDir: string): StorageConfig {
  const type = s.string("storage.type", "GARRET_STORAGE_TYPE") ?? "local";
  if (type === "local") {
    return { type, path: resolve(s.string("storage.path", "GARRET_STORAGE_PATH") ?? join(dataDir, "storage")) };
  }
  if (type !== "s3") throw new ConfigError(`storage.type: must be "local" or "s3", got ${JSON.stringify(type)}`);
  const bucket = s.string("storage.bucket", "GARRET_S3_BUCKET");
  if (!bucket) throw new ConfigError('storage.bucket: required when storage.type = "s3"');
  const endpoint = s.string("storage.endpoint", "GARRET_S3_ENDPOINT");
  if (endpoint !== undefined && !/^https?:\/\/[^\s]+$/.test(endpoint)) {
    throw new ConfigError(`storage.endpoint: must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
  }
  const prefix = s.string("storage.prefix", "GARRET_S3_PREFIX") ?? "";
  if (prefix !== "" && !/^[A-Za-z0-9_.\-/]+\/$/.test(prefix)) throw new ConfigError('storage.prefix: must end with "/" and use A-Z a-z 0-9 _ . - /');
  const accessKeyId = s.string("storage.access-key-id", "GARRET_S3_ACCESS_KEY_ID");
  const secretAccessKey = s.string("storage.secret-access-key", "GARRET_S3_SECRET_ACCESS_KEY");
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError("storage.access-key-id: set both access-key-id and secret-access-key, or neither (then AWS_* variables are used)");
  }
  return {
    type, bucket, endpoint, prefix, accessKeyId, secretAccessKey,
    region: s.string("storage.region", "GARRET_S3_REGION") ?? process.env.AWS_REGION ?? "us-east-1",
    forcePathStyle: s.bool("storage.force-path-style", "GARRET_S3_FORCE_PATH_STYLE") ?? endpoint !== undefined,
    partSize: DEFAULT_PART_SIZE,
    maxAttempts: s.number("storage.max-attempts", "GARRET_S3_MAX_ATTEMPTS") ?? 5,
    redirectTtl: s.bool("storage.download-redirect", "GARRET_S3_DOWNLOAD_REDIRECT")
      ? s.duration("storage.redirect-ttl", "GARRET_S3_REDIRECT_TTL") ?? 300 : 0,
  };
}

/** `[database] url` (default: garret.db in the data dir) and `pool-size`; the URL is checked when opened. */
function databaseSettings(s: Settings, flags: ServerFlags, dataDir: string): { url: string; poolSize: number } {
  const url = s.string("database.url", "GARRET_DATABASE_URL", flags.databaseUrl) ?? `sqlite://${databasePath(dataDir)}`;
  const poolSize = s.number("database.pool-size", "GARRET_DATABASE_POOL_SIZE") ?? 10;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 1000) throw new ConfigError("database.pool-size: must be an integer 1..1000");
  return { url, poolSize };
}

/** `[gc]`: flags of serve/gc, GARRET_* variables, the file's keys, in that order. */
function gcSettings(s: Settings, flags: ServerFlags): GcOptions {
  const t = s.number("gc.compact-threshold", "GARRET_GC_COMPACT_THRESHOLD", flags.compactThreshold) ?? DEFAULT_GC.compactThreshold;
  if (t < 0 || t > 1) throw new ConfigError(`gc.compact-threshold: expected a fraction 0..1, got ${t}`);
  return {
    defaultRetention: s.duration("gc.retention", "GARRET_RETENTION", flags.retention) ?? DEFAULT_GC.defaultRetention,
    grace: s.duration("gc.grace", "GARRET_GC_GRACE", flags.gcGrace) ?? DEFAULT_GC.grace,
    compactThreshold: t,
    interval: s.duration("gc.interval", "GARRET_GC_INTERVAL", flags.gcInterval) ?? DEFAULT_GC.interval,
  };
}

/**
 * `[upload] staging-quota` (bytes of staged NAR per token; a number, or "10GiB", "500MB") and
 * `staging-ttl` (seconds, or "30s", "15m", "1h"): native `nix copy` PUTs not yet named by a narinfo.
 * `max-nar-size` (bytes; 0 or absent: no limit): the largest NAR any upload may be, decoded.
 */
function uploadSettings(s: Settings): UploadLimits {
  const quotaText = s.text("upload.staging-quota", "GARRET_UPLOAD_STAGING_QUOTA");
  let stagingQuota = DEFAULT_UPLOAD.stagingQuota;
  if (quotaText !== undefined) {
    try {
      stagingQuota = parseSize(quotaText, "upload.staging-quota");
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  const ttl = s.duration("upload.staging-ttl", "GARRET_UPLOAD_STAGING_TTL");
  if (ttl !== undefined && ttl <= 0) throw new ConfigError("upload.staging-ttl: must be longer than 0");
  const stagingTtlMs = ttl === undefined ? DEFAULT_UPLOAD.stagingTtlMs : ttl * 1000;
  const maxText = s.text("upload.max-nar-size", "GARRET_UPLOAD_MAX_NAR_SIZE");
  let maxNarSize = DEFAULT_UPLOAD.maxNarSize;
  if (maxText !== undefined && maxText !== "0") {
    try {
      maxNarSize = parseSize(maxText, "upload.max-nar-size");
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  return { stagingQuota, stagingTtlMs, maxNarSize };
}

/** A PEM value given inline, or the path of a file holding it (relative to the config file). */
function pemSetting(s: Settings, key: string, envName: string, configFile: string | null): string | undefined {
  const v = s.string(key, envName);
  if (v === undefined) return undefined;
  if (v.includes("-----BEGIN")) return v;
  const path = resolve(configFile ? join(configFile, "..") : ".", v);
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${key}: not a PEM key nor a readable file (${(err as NodeJS.ErrnoException).code ?? "unreadable"})`);
  }
}

function stringList(s: Settings, key: string): string[] | undefined {
  const v = s.raw(key);
  if (v === undefined) return undefined;
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => typeof x === "string" && x !== "")) {
    throw new ConfigError(`${key}: must be a list of strings`);
  }
  return list as string[];
}

/** `[auth]` and `[[auth.oidc]]`. */
function authSettings(s: Settings, configFile: string | null): AuthConfig {
  const hs256SecretBase64 = s.string("auth.hs256-secret-base64", "GARRET_TOKEN_HS256_SECRET_BASE64");
  if (hs256SecretBase64 !== undefined) {
    const text = hs256SecretBase64.trim();
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || Buffer.from(text, "base64").length === 0) {
      throw new ConfigError("auth.hs256-secret-base64: must be non-empty base64");
    }
  }
  const rs256PublicKey = pemSetting(s, "auth.rs256-public-key", "GARRET_TOKEN_RS256_PUBLIC_KEY", configFile);
  const rs256SecretKey = pemSetting(s, "auth.rs256-secret-key", "GARRET_TOKEN_RS256_SECRET_KEY", configFile);
  if (rs256SecretKey && !rs256PublicKey) throw new ConfigError("auth.rs256-secret-key: set auth.rs256-public-key too");
  const boundIssuer = s.string("auth.bound-issuer", "GARRET_TOKEN_BOUND_ISSUER");
  const boundAudiences = stringList(s, "auth.bound-audiences");
  return { hs256SecretBase64, rs256PublicKey, rs256SecretKey, boundIssuer, boundAudiences, oidc: oidcSettings(s.raw("auth.oidc")) };
}

/** Permission flag names in `[[auth.oidc.rules]]` → Attic claim letters. */
const OIDC_GRANTS: Record<string, string> = {
  pull: "r", push: "w", delete: "d", "create-cache": "cc", "configure-cache": "cr",
  "configure-cache-retention": "cq", "destroy-cache": "cd",
};

/**
 * `[[auth.oidc]]` tables: issuer, audience and `[[auth.oidc.rules]]`, each with claim matches
 * (`repository`, `ref`, or any claim under `[auth.oidc.rules.claims]`) and cache lists per permission
 * (`push = ["ci-*"]`).
 */
function oidcSettings(value: unknown): OidcTrust[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError("auth.oidc: must be an array of tables ([[auth.oidc]])");
  return value.map((t: Table, i) => {
    const key = `auth.oidc[${i}]`;
    if (typeof t.issuer !== "string" || !/^https?:\/\//.test(t.issuer)) throw new ConfigError(`${key}.issuer: must be an http(s) URL`);
    if (typeof t.audience !== "string" || t.audience === "") throw new ConfigError(`${key}.audience: required`);
    const rules = t.rules ?? [];
    if (!Array.isArray(rules)) throw new ConfigError(`${key}.rules: must be an array of tables ([[auth.oidc.rules]])`);
    return {
      issuer: t.issuer.replace(/\/+$/, ""), audience: t.audience,
      rules: rules.map((r: Table, j) => {
        const rk = `${key}.rules[${j}]`;
        const match: Record<string, string> = {};
        for (const claim of ["repository", "ref"]) {
          if (r[claim] === undefined) continue;
          if (typeof r[claim] !== "string") throw new ConfigError(`${rk}.${claim}: must be a string`);
          match[claim] = r[claim] as string;
        }
        for (const [claim, want] of Object.entries((r.claims ?? {}) as Table)) {
          if (typeof want !== "string") throw new ConfigError(`${rk}.claims.${claim}: must be a string`);
          match[claim] = want;
        }
        const caches: Record<string, Record<string, 1>> = {};
        for (const [flag, letter] of Object.entries(OIDC_GRANTS)) {
          const list = r[flag];
          if (list === undefined) continue;
          if (!Array.isArray(list) || !list.every((x) => typeof x === "string" && /^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$/.test(x))) {
            throw new ConfigError(`${rk}.${flag}: must be a list of cache names or patterns`);
          }
          for (const pattern of list as string[]) caches[pattern] = { ...caches[pattern], [letter]: 1 };
        }
        // An exact name decides over globs in a token, so `push = ["a"]` beside `pull = ["*"]` gets
        // what the operator means: the name gets the globs' letters of this rule too.
        for (const name of Object.keys(caches).filter((k) => !k.includes("*"))) {
          for (const glob of Object.keys(caches).filter((k) => k.includes("*"))) {
            const re = new RegExp(`^${glob.replace(/[+\-]/g, "\\$&").replace(/\*/g, ".*")}$`);
            if (re.test(name)) caches[name] = { ...caches[glob], ...caches[name] };
          }
        }
        return { match, caches };
      }),
    };
  });
}

/** Which config file applies: --config, GARRET_CONFIG, ./garret.toml when present, else none. */
export function configFilePath(flag: string | undefined, env = process.env): string | null {
  const explicit = flag ?? (env.GARRET_CONFIG || undefined);
  if (explicit) return resolve(explicit);
  return existsSync(DEFAULT_CONFIG_FILE) ? resolve(DEFAULT_CONFIG_FILE) : null;
}

export function serverConfig(flags: ServerFlags, env = process.env): ServerConfig {
  const configFile = configFilePath(flags.config, env);
  const file = readConfigFile(configFile);
  const unknown = unknownKeys(file);
  if (unknown.length > 0) throw new ConfigError(`config file ${configFile}: ${unknown.join("; ")}`);
  const s = new Settings(file, env);
  const dataDir = resolve(s.string("data-dir", "GARRET_DATA", flags.data) ?? DEFAULT_DATA_DIR);
  const listen = s.string("listen", "GARRET_LISTEN", flags.listen) ?? DEFAULT_LISTEN;
  parseListen(listen);
  return {
    listen,
    dataDir,
    publicUrl: s.string("public-url", "GARRET_PUBLIC_URL", flags.publicUrl) ?? null,
    storage: storageSettings(s, dataDir),
    ingest: { ...DEFAULT_INGEST, chunking: DEFAULT_CHUNKING, ...compressionSettings(s, flags) },
    database: databaseSettings(s, flags, dataDir),
    gc: gcSettings(s, flags),
    configFile,
    logFormat: logFormatSetting(s.string("log-format", "GARRET_LOG_FORMAT", flags.logFormat)),
    metricsToken: s.string("metrics.token", "GARRET_METRICS_TOKEN") || null,
    upload: uploadSettings(s),
    auth: authSettings(s, configFile),
  };
}

function logFormatSetting(value: string | undefined): "text" | "json" {
  if (value === undefined || value === "text" || value === "json") return value ?? "text";
  throw new ConfigError(`log-format: must be text or json, got ${JSON.stringify(value)}`);
}

export interface ListenAddress {
  hostname: string;
  port: number;
}

export function parseListen(value: string): ListenAddress {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`listen: address must be HOST:PORT, got ${JSON.stringify(value)}`);
  return { hostname: m[1]!.replace(/^\[|\]$/g, ""), port };
}

export const databasePath = (dataDir: string): string => join(dataDir, "garret.db");
