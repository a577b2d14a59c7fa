/** garret's own /_api/v1 endpoints beyond Attic's: paths, request and answer types, defined once. */

export const GARRET_PATHS = {
  pins: (cache: string) => `/_api/v1/pins/${encodeURIComponent(cache)}`,
  pin: (cache: string, name: string) => `/_api/v1/pins/${encodeURIComponent(cache)}/${encodeURIComponent(name)}`,
  path: (cache: string, hash: string) => `/_api/v1/paths/${encodeURIComponent(cache)}/${encodeURIComponent(hash)}`,
} as const;

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
