import { hostname } from "node:os";
import { join } from "node:path";
import { CACHE_NAME } from "../cache/access.ts";
import { parseDuration } from "../duration.ts";
import type { Compression } from "../db/types.ts";

/** Everything `garret setup` asks, as answered. Paths are absolute. */
export interface SetupAnswers {
  listen: string;
  publicUrl: string;
  dataDir: string;
  storage: LocalStorageAnswer | S3StorageAnswer;
  database: "sqlite" | "postgres";
  /** postgres:// URL when database is "postgres" (checked live by setup), else null. */
  databaseUrl: string | null;
  compression: Compression;
  compressionLevel: number | null;
  /** Seconds an unused path is kept; 0 keeps everything forever. */
  retention: number;
  cache: { name: string; isPublic: boolean };
}

/** `path` null: the default, `<data-dir>/storage`, which follows the data dir if it moves. */
export interface LocalStorageAnswer {
  type: "local";
  path: string | null;
}

export interface S3StorageAnswer {
  type: "s3";
  bucket: string;
  region: string;
  endpoint: string | null;
  prefix: string;
  /** Both null: credentials come from the AWS chain (AWS_* variables, profiles). */
  accessKeyId: string | null;
  secretAccessKey: string | null;
}

export const DEFAULT_S3_REGION = "us-east-1";
export const DEFAULT_CACHE_NAME = "main";

/*
 * Checks shared by flags and prompts: each returns the problem in a few words, or undefined.
 */

export function checkListen(v: string): string | undefined {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(v.trim());
  if (!m || Number(m[2]) > 65535) return "use HOST:PORT, e.g. 0.0.0.0:8080";
  return undefined;
}

export function checkUrl(v: string): string | undefined {
  return /^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(v.trim()) ? undefined : "use an http:// or https:// URL";
}

export function checkOptionalUrl(v: string): string | undefined {
  return v.trim() === "" ? undefined : checkUrl(v);
}

export function checkRequired(v: string): string | undefined {
  return v.trim() === "" ? "required" : undefined;
}

export function checkPath(v: string): string | undefined {
  return v.trim() === "" ? "required" : v.includes("\0") ? "invalid path" : undefined;
}

export function checkBucket(v: string): string | undefined {
  return /^[a-z0-9][a-z0-9.\-_]{1,254}$/i.test(v.trim()) ? undefined : "a bucket name: letters, digits, . - _";
}

export function checkPrefix(v: string): string | undefined {
  return v === "" || /^[A-Za-z0-9_.\-/]+\/$/.test(v) ? undefined : 'end with "/" and use A-Z a-z 0-9 _ . - /';
}

export function checkCacheName(v: string): string | undefined {
  return CACHE_NAME.test(v.trim()) ? undefined : "1-50 characters of A-Z a-z 0-9 - _ +, starting with a letter or digit";
}

/** Retention: seconds, a duration (30d, 3mo, 1y), or 0 / forever to keep everything. */
export function parseRetention(v: string): number {
  const t = v.trim().toLowerCase();
  if (t === "forever" || t === "never" || t === "") return 0;
  return parseDuration(t, "gc.retention");
}

export function checkRetention(v: string): string | undefined {
  try {
    parseRetention(v);
    return undefined;
  } catch {
    return "seconds, or a duration like 30d, 12w, 3mo, 1y; 0 keeps everything forever";
  }
}

/** Public URL suggested for a listen address: a wildcard address becomes this machine's name. */
export function defaultPublicUrl(listen: string): string {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(listen.trim());
  if (!m) return "http://127.0.0.1:8080";
  const host = ["0.0.0.0", "[::]", "::"].includes(m[1]!) ? hostname() || "localhost" : m[1]!;
  return `http://${host}:${m[2]}`;
}

export const defaultStoragePath = (dataDir: string): string => join(dataDir, "storage");

/** TOML basic string: JSON's escapes are all valid TOML escapes. */
const str = (v: string): string => JSON.stringify(v);

/** Default level written for each compression (what the server would pick anyway). */
export function compressionLevelFor(c: Compression, level: number | null): number | null {
  if (level !== null) return level;
  return c === "br" ? 5 : c === "zstd" ? 3 : null;
}

/**
 * The config file, with comments an operator can follow. Read back by serverConfig; the [gc]
 * table by the collector (src/gc/config.ts: `retention` in seconds).
 */
export function renderConfig(a: SetupAnswers, opts: { redact?: boolean } = {}): string {
  const lines = [
    "# garret server configuration, written by `garret setup`.",
    "# Start the server with: garret serve --config <this file>",
    "",
    `listen = ${str(a.listen)}`,
    `public-url = ${str(a.publicUrl)}`,
    `data-dir = ${str(a.dataDir)}`,
    "",
    ...(a.database === "postgres" && a.databaseUrl
      ? ["[database]", `url = ${str(opts.redact ? a.databaseUrl.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:<hidden>@") : a.databaseUrl)}`, ""]
      : ["# Database: embedded SQLite at <data-dir>/garret.db ([database] url = \"postgres://...\" for PostgreSQL).", ""]),
    "[compression]",
    `type = ${str(a.compression).padEnd(8)} # zstd | br | none`,
  ];
  const level = compressionLevelFor(a.compression, a.compressionLevel);
  if (level !== null) lines.push(`level = ${level}`);
  lines.push(
    "",
    "[gc]",
    "# Seconds a path nobody pulled is kept before the collector may delete it (for caches whose",
    "# own retention is \"Global\"); 0 keeps everything.",
    `retention = ${a.retention}`,
    "",
    "[storage]",
  );
  const s = a.storage;
  if (s.type === "local") {
    lines.push('type = "local"');
    if (s.path !== null) lines.push(`path = ${str(s.path)}`);
    else lines.push(`# path = ${str(defaultStoragePath(a.dataDir))}   (the default)`);
  } else {
    lines.push('type = "s3"', `bucket = ${str(s.bucket)}`, `region = ${str(s.region)}`);
    if (s.endpoint !== null) lines.push(`endpoint = ${str(s.endpoint)}`, "force-path-style = true");
    if (s.prefix !== "") lines.push(`prefix = ${str(s.prefix)}`);
    if (s.accessKeyId !== null && s.secretAccessKey !== null) {
      lines.push(
        `access-key-id = ${str(s.accessKeyId)}`,
        `secret-access-key = ${str(opts.redact ? "<hidden>" : s.secretAccessKey)}`,
      );
    } else {
      lines.push("# credentials: from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS profile");
    }
  }
  return `${lines.join("\n")}\n`;
}
