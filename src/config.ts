import { join, resolve } from "node:path";
import { DEFAULT_CHUNKING } from "./store/chunker.ts";
import { DEFAULT_INGEST, type IngestOptions } from "./store/ingest.ts";

/** Server settings. Flags win over GARRET_* environment variables, which win over defaults. */
export interface ServerConfig {
  listen: string;
  dataDir: string;
  publicUrl: string | null;
  ingest: IngestOptions;
}

export const DEFAULT_LISTEN = "127.0.0.1:8080";
export const DEFAULT_DATA_DIR = "./garret-data";

export function serverConfig(flags: { listen?: string; data?: string; publicUrl?: string }, env = process.env): ServerConfig {
  return {
    listen: flags.listen ?? env.GARRET_LISTEN ?? DEFAULT_LISTEN,
    dataDir: resolve(flags.data ?? env.GARRET_DATA ?? DEFAULT_DATA_DIR),
    publicUrl: flags.publicUrl ?? env.GARRET_PUBLIC_URL ?? null,
    ingest: { ...DEFAULT_INGEST, chunking: DEFAULT_CHUNKING },
  };
}

export const databasePath = (dataDir: string): string => join(dataDir, "garret.db");
export const storagePath = (dataDir: string): string => join(dataDir, "storage");
