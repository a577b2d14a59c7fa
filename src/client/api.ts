import type { GetMissingPathsAnswer, UploadAnswer, UploadNarInfo } from "../api/attic.ts";
import { ATTIC_PATHS } from "../api/attic.ts";
import { DASHBOARD_PATHS, GARRET_PATHS, type CachesAnswer, type CacheStatsAnswer, type TokenExchangeAnswer, type TokenExchangeRequest, type WhoamiAnswer } from "../api/garret.ts";
import type { ServerEntry } from "./config.ts";
import { tlsOptions } from "./tls.ts";
import { defaultRetryPolicy, withRetry, type RetryPolicy } from "./retry.ts";
import { connectionProblem, explainRefusal, type Need } from "./explain.ts";

/**
 * An error answer from the server, carrying its stable error name. `explained`: the message was
 * rewritten for the user (names the alias, the cache, the fix), so the CLI prints it alone.
 */
export class ApiError extends Error {
  /** For a failed connection (status 0): the system's code, e.g. ECONNREFUSED. */
  readonly netCode?: string;

  constructor(readonly status: number, readonly error: string, message: string, netCode?: string, readonly explained = false) {
    super(message);
    if (netCode) this.netCode = netCode;
  }
}

/** Told before each retry of an idempotent call (attempt counts from 1, of `retries`). */
export type RetryListener = (attempt: number, retries: number, err: ApiError, delayMs: number) => void;

export interface CallOptions {
  onRetry?: RetryListener;
  /** Instead of the client's own backoff (push's --retries). */
  retry?: RetryPolicy;
}

export type { Need };

export type { UploadAnswer, UploadNarInfo };

export interface ApiClientOptions {
  /** A PEM file of extra CAs to trust (flag --ca-file); the server entry may name one too. */
  caFile?: string;
  /** Backoff for idempotent calls (reads, get-missing-paths). */
  retry?: RetryPolicy;
  env?: NodeJS.ProcessEnv;
  /** The alias the user named this server by, for error messages ("cache local:foo does not exist"). */
  alias?: string;
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|HOSTNAME|TLS|SSL/i;

/** One readable line for a failed connection, with a hint when it is about trust. */
export function networkError(base: string, err: unknown, what = `cannot reach ${base}`): ApiError {
  const e = err as { code?: string; message?: string };
  const detail = e?.message ?? String(err);
  // A certificate the client does not trust will not become trusted by trying again.
  if (e?.code && TLS_CODES.test(e.code)) {
    return new ApiError(0, "TlsError", `${what}: ${detail} (for a private CA pass --ca-file FILE, or set SSL_CERT_FILE or NODE_EXTRA_CA_CERTS)`);
  }
  let host = base;
  try {
    host = new URL(base).hostname;
  } catch {
    // not a URL: say it as given
  }
  return new ApiError(0, "NetworkError", `${what}: ${connectionProblem(err, host)}`, e?.code);
}

/** A thin client for garret's (and Attic's) /_api/v1, with retries on idempotent calls. */
export class ApiClient {
  readonly base: string;
  readonly retry: RetryPolicy;
  readonly alias: string | undefined;
  private tls: { ca: string[] } | undefined;

  constructor(private readonly server: ServerEntry, opts: ApiClientOptions = {}) {
    this.base = server.endpoint.replace(/\/+$/, "");
    this.retry = opts.retry ?? defaultRetryPolicy(opts.env);
    this.alias = opts.alias;
    if (this.base.startsWith("https:")) {
      this.tls = { ca: tlsOptions([server.caFile, opts.caFile], opts.env).ca };
    }
  }

  get token(): string | undefined {
    return this.server.token;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.server.token ? { authorization: `Bearer ${this.server.token}`, ...extra } : extra;
  }

  /** fetch with this client's TLS trust. */
  fetch(url: string, init: RequestInit & { timeout?: number | boolean } = {}): Promise<Response> {
    return fetch(url, this.tls ? ({ ...init, tls: this.tls } as RequestInit) : init);
  }

  /** One JSON call with this client's token and TLS trust; no retries. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await this.fetch(`${this.base}${path}`, {
        method,
        headers: this.headers(body === undefined ? {} : { "content-type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw networkError(this.base, err);
    }
    return parseAnswer<T>(res);
  }

  private call<T>(method: string, path: string, body?: unknown, retry = method === "GET", opts: CallOptions = {}): Promise<T> {
    if (!retry) return this.json<T>(method, path, body);
    const onRetry = opts.onRetry;
    const policy = opts.retry ?? this.retry;
    return withRetry(policy, () => this.json<T>(method, path, body),
      onRetry && ((n, err, ms) => onRetry(n, policy.retries, err as ApiError, ms)));
  }

  /** Trades this client's token for a narrower, shorter-lived one (not retried: each call mints). */
  exchangeToken(req: TokenExchangeRequest): Promise<TokenExchangeAnswer> {
    return this.call("POST", GARRET_PATHS.tokenExchange, req, false);
  }

  /** What this client's token is on the server (garret servers; others answer 404). */
  whoami(retry = true): Promise<WhoamiAnswer> {
    return this.call("GET", GARRET_PATHS.whoami, undefined, retry);
  }

  getCache<T>(cache: string, opts: CallOptions = {}): Promise<T> {
    return this.about(cache, "any", () => this.call("GET", ATTIC_PATHS.cacheConfig(cache), undefined, true, opts));
  }

  /** A cache's figures (garret servers since issue 14; others answer 404). */
  cacheStats(cache: string): Promise<CacheStatsAnswer> {
    return this.about(cache, "any", () => this.call("GET", DASHBOARD_PATHS.cacheStats(cache)));
  }

  /** Every cache the token may see, with its figures (garret servers since issue 14; others answer 404). */
  listCaches(): Promise<CachesAnswer> {
    return this.call("GET", DASHBOARD_PATHS.caches);
  }

  createCache<T>(cache: string, body: Record<string, unknown>): Promise<T> {
    return this.about(cache, "createCache", () => this.call("POST", ATTIC_PATHS.cacheConfig(cache), body));
  }

  configureCache<T>(cache: string, body: Record<string, unknown>): Promise<T> {
    return this.about(cache, "configureCache", () => this.call("PATCH", ATTIC_PATHS.cacheConfig(cache), body));
  }

  destroyCache(cache: string): Promise<unknown> {
    return this.about(cache, "destroyCache", () => this.call("DELETE", ATTIC_PATHS.cacheConfig(cache)));
  }

  async missingPaths(cache: string, hashes: string[], opts: CallOptions = {}): Promise<string[]> {
    const answer = await this.about(cache, "push", () => this.call<GetMissingPathsAnswer>("POST", ATTIC_PATHS.getMissingPaths, {
      cache, store_path_hashes: hashes,
    }, true, opts));
    return answer.missing_paths;
  }

  /**
   * Runs a call about one cache; a refusal comes back naming the alias and cache, the permission
   * the token lacked, or the cache the user probably meant (from the caches the token can see).
   */
  async about<T>(cache: string, need: Need, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof ApiError) || err.explained) throw err;
      const visible = err.error === "NoSuchCache" ? await this.visibleCaches() : null;
      const line = explainRefusal(err, {
        server: this.base, alias: this.alias ?? null, cache, need, hasToken: this.server.token !== undefined, visible,
      });
      throw line === null ? err : new ApiError(err.status, err.error, line, err.netCode, true);
    }
  }

  /** The names of the caches the token can see, or null when the server does not say (an Attic server). */
  private async visibleCaches(): Promise<string[] | null> {
    try {
      return (await this.json<CachesAnswer>("GET", DASHBOARD_PATHS.caches)).caches.map((c) => c.name);
    } catch {
      return null; // no listing: no suggestion
    }
  }

  /**
   * Sends a NAR to upload-path, streamed or (small ones) in one buffer; one attempt: a stream
   * cannot be replayed. The metadata goes in
   * X-Attic-Nar-Info, or in a JSON preamble when it is too big for a header (hundreds of
   * references). No deadline: Bun's idle timer (reset by every byte) is the only limit, so a slow
   * transfer that still moves is never cut.
   */
  async uploadPath(info: UploadNarInfo, nar: ReadableStream<Uint8Array> | Uint8Array, opts: { encoding?: string; signal?: AbortSignal } = {}): Promise<UploadAnswer> {
    const meta = JSON.stringify(info);
    const headers: Record<string, string> = { "content-type": "application/x-nix-nar" };
    if (opts.encoding) headers["content-encoding"] = opts.encoding;
    let body = nar;
    if (meta.length <= 4096) {
      headers["x-attic-nar-info"] = meta;
    } else {
      const head = new TextEncoder().encode(meta);
      headers["x-attic-nar-info-preamble-size"] = String(head.length);
      body = nar instanceof Uint8Array ? Buffer.concat([head, nar]) : prepend(head, nar);
    }
    let res: Response;
    try {
      res = await this.fetch(`${this.base}${ATTIC_PATHS.uploadPath}`, {
        method: "PUT", headers: this.headers(headers), body, signal: opts.signal,
        duplex: "half", // Node needs this for a streamed request body; Bun accepts it
      } as RequestInit);
    } catch (err) {
      throw networkError(this.base, err, `upload of ${info.store_path} failed`);
    }
    return this.about(info.cache, "push", () => parseAnswer<UploadAnswer>(res));
  }
}

/** A stream of `head` followed by `rest`, pulled lazily (used for Attic's preamble form). */
export function prepend(head: Uint8Array, rest: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = rest.getReader();
  let sent = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(head);
        return;
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

async function parseAnswer<T>(res: Response): Promise<T> {
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw new ApiError(0, "NetworkError", `the connection broke while reading the answer: ${(err as Error).message}`);
  }
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
