/**
 * Attic's /_api/v1 wire types, defined once: the server's routes answer with them and the CLI's
 * ApiClient reads them. Field names are Attic's (snake_case) because Attic's own client reads them.
 */

export const ATTIC_PATHS = {
  getMissingPaths: "/_api/v1/get-missing-paths",
  uploadPath: "/_api/v1/upload-path",
  cacheConfig: (cache: string) => `/_api/v1/cache-config/${encodeURIComponent(cache)}`,
} as const;

/** The metadata of an upload, as Attic's client sends it (X-Attic-Nar-Info or the JSON preamble). */
export interface UploadNarInfo {
  cache: string;
  store_path_hash: string;
  store_path: string;
  references: string[];
  system: string | null;
  deriver: string | null;
  sigs: string[];
  ca: string | null;
  nar_hash: string;
  nar_size: number;
}

export interface UploadAnswer {
  kind: "Uploaded" | "Deduplicated";
  file_size: number;
  frac_deduplicated: number;
}

export interface GetMissingPathsRequest {
  cache: string;
  store_path_hashes: string[];
}

export interface GetMissingPathsAnswer {
  missing_paths: string[];
}

export type RetentionPeriod = "Global" | { Period: number };

/** The JSON answer of GET cache-config, as Attic's client reads it. */
export interface CacheConfigView {
  substituter_endpoint: string;
  api_endpoint: string;
  public_key: string;
  is_public: boolean;
  store_dir: string;
  priority: number;
  upstream_cache_key_names: string[];
  retention_period: RetentionPeriod;
  /** garret extension: stored bytes kept before least recently used closures go; null = none. */
  quota_bytes: number | null;
}

/** Every error answer: Attic's shape. `error` is the stable code scripts match on. */
export interface ErrorAnswer {
  code: number;
  error: string;
  message: string;
}
