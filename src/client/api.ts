import type { ServerEntry } from "./config.ts";

/** An error answer from the server, carrying its stable error name. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly error: string, message: string) {
    super(message);
  }
}

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

/** A thin client for garret's (and Attic's) /_api/v1. */
export class ApiClient {
  readonly base: string;

  constructor(private readonly server: ServerEntry) {
    this.base = server.endpoint.replace(/\/+$/, "");
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.server.token ? { authorization: `Bearer ${this.server.token}`, ...extra } : extra;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: this.headers(body === undefined ? {} : { "content-type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, "NetworkError", `cannot reach ${this.base}: ${(err as Error).message}`);
    }
    return parseAnswer<T>(res);
  }

  getCache<T>(cache: string): Promise<T> {
    return this.call("GET", `/_api/v1/cache-config/${encodeURIComponent(cache)}`);
  }

  createCache<T>(cache: string, body: Record<string, unknown>): Promise<T> {
    return this.call("POST", `/_api/v1/cache-config/${encodeURIComponent(cache)}`, body);
  }

  configureCache<T>(cache: string, body: Record<string, unknown>): Promise<T> {
    return this.call("PATCH", `/_api/v1/cache-config/${encodeURIComponent(cache)}`, body);
  }

  destroyCache(cache: string): Promise<unknown> {
    return this.call("DELETE", `/_api/v1/cache-config/${encodeURIComponent(cache)}`);
  }

  async missingPaths(cache: string, hashes: string[]): Promise<string[]> {
    const answer = await this.call<{ missing_paths: string[] }>("POST", "/_api/v1/get-missing-paths", {
      cache, store_path_hashes: hashes,
    });
    return answer.missing_paths;
  }

  /** Streams a NAR to upload-path with the metadata in the X-Attic-Nar-Info header. */
  async uploadPath(info: UploadNarInfo, nar: ReadableStream<Uint8Array>): Promise<UploadAnswer> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/_api/v1/upload-path`, {
        method: "PUT",
        headers: this.headers({
          "content-type": "application/x-nix-nar",
          "x-attic-nar-info": JSON.stringify(info),
        }),
        body: nar,
        // Uploads may take long; never time out a transfer that is still moving.
        signal: undefined,
      });
    } catch (err) {
      throw new ApiError(0, "NetworkError", `upload of ${info.store_path} failed: ${(err as Error).message}`);
    }
    return parseAnswer<UploadAnswer>(res);
  }
}

async function parseAnswer<T>(res: Response): Promise<T> {
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: handled below
  }
  if (!res.ok) {
    const e = json as { error?: string; message?: string } | null;
    throw new ApiError(res.status, e?.error ?? `HTTP${res.status}`, e?.message ?? (text.slice(0, 200) || res.statusText));
  }
  return json as T;
}
