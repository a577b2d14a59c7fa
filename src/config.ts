import { join, resolve } from "node:path";
import { DEFAULT_CHUNKING } from "./store/chunker.ts";
import { DEFAULT_INGEST, type IngestOptions } from "./store/ingest.ts";
import { COMPRESSIONS } from "./store/compression.ts";
import type { Compression } from "./db/types.ts";

/** Server settings. Flags win over GARRET_* environment variables, which win over defaults. */
export interface ServerConfig {
  listen: string;
  dataDir: string;
  publicUrl: string | null;
  ingest: IngestOptions;
}

export const DEFAULT_LISTEN = "127.0.0.1:8080";
export const DEFAULT_DATA_DIR = "./garret-data";

export interface ServerFlags {
  listen?: string;
  data?: string;
  publicUrl?: string;
  compression?: string;
  compressionLevel?: string;
}

/** A setting with a bad value: names the key and the problem in one line. */
export class ConfigError extends Error {}

function parseCompression(value: string): Compression {
  if (!(COMPRESSIONS as readonly string[]).includes(value)) {
    throw new ConfigError(`compression: must be one of ${COMPRESSIONS.join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value as Compression;
}

function parseLevel(value: string, compression: Compression): number {
  const n = Number(value);
  const max = compression === "br" ? 11 : 19;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ConfigError(`compression-level: must be an integer 1..${max} for ${compression}`);
  return n;
}

export function serverConfig(flags: ServerFlags, env = process.env): ServerConfig {
  const compression = parseCompression(flags.compression ?? env.GARRET_COMPRESSION ?? DEFAULT_INGEST.compression);
  const level = flags.compressionLevel ?? env.GARRET_COMPRESSION_LEVEL;
  const defaultLevel = compression === "br" ? 5 : DEFAULT_INGEST.compressionLevel;
  return {
    listen: flags.listen ?? env.GARRET_LISTEN ?? DEFAULT_LISTEN,
    dataDir: resolve(flags.data ?? env.GARRET_DATA ?? DEFAULT_DATA_DIR),
    publicUrl: flags.publicUrl ?? env.GARRET_PUBLIC_URL ?? null,
    ingest: {
      ...DEFAULT_INGEST,
      chunking: DEFAULT_CHUNKING,
      compression,
      compressionLevel: level === undefined ? defaultLevel : parseLevel(level, compression),
    },
  };
}

export const databasePath = (dataDir: string): string => join(dataDir, "garret.db");
export const storagePath = (dataDir: string): string => join(dataDir, "storage");
