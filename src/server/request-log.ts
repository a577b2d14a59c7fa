import type { Caller } from "../cache/access.ts";
import { CACHE_NAME, RejectedToken } from "../cache/access.ts";

/**
 * What the routes learn about a request that its log line and the metrics need: who called (the
 * token's sub and id, never the token), why it was refused, body bytes received. Kept beside the
 * Request object (the routes see only the Request), filled by callerOf and the error handler.
 */
export interface RequestInfo {
  id: string;
  /** The peer's address (a proxy's, behind one). */
  client: string | null;
  sub: string | null;
  jti: string | null;
  /** Why the request was refused (401/403), or why a sent token was not accepted. */
  why: string | null;
  bytesIn: number;
}

const infos = new WeakMap<Request, RequestInfo>();

export function attachInfo(request: Request, info: RequestInfo): void {
  infos.set(request, info);
}

export function infoOf(request: Request): RequestInfo | undefined {
  return infos.get(request);
}

/** Notes who the caller is on the request's info (claims, or why a token was refused). */
export function noteCaller(request: Request, caller: Caller): void {
  const info = infos.get(request);
  if (!info || !caller) return;
  if (caller instanceof RejectedToken) info.why = `token rejected: ${caller.reason}`;
  else {
    info.sub = caller.sub;
    const jti = (caller as { jti?: unknown }).jti;
    if (typeof jti === "string") info.jti = jti;
  }
}

/** Notes why a request was refused, from the error the route threw (a token's rejection, noted first, stays). */
export function noteRefusal(request: Request, why: string): void {
  const info = infos.get(request);
  if (info) info.why ??= why;
}

/** Counts a streamed request body's bytes into its info as they pass. */
export async function* countedBody(request: Request, body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const info = infos.get(request);
  for await (const chunk of body) {
    if (info) info.bytesIn += chunk.byteLength;
    yield chunk;
  }
}

let counter = 0;
const PREFIX = crypto.randomUUID().slice(0, 8);
const GIVEN_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** A request id: the proxy's X-Request-Id when it is a plain token, else one made here. */
export function requestId(given: string | null): string {
  if (given && GIVEN_ID.test(given)) return given;
  return `${PREFIX}-${(++counter).toString(36)}`;
}

export interface RouteClass {
  /** The path's class, e.g. "narinfo", "api/upload-path": never a cache name or a hash. */
  route: string;
  /** The cache the path names, when it names a valid one. */
  cache: string | null;
}

const API_CACHE_ROUTES = new Set(["cache-config", "pins", "paths", "caches", "cache-log", "cache-purge"]);

/** The route class and cache of a path, from its shape alone (for logs and metric labels). */
export function classify(path: string): RouteClass {
  const parts = path.split("/");
  // parts[0] is "" (the path starts with "/")
  if (path === "/") return { route: "root", cache: null };
  if (path === "/metrics") return { route: "metrics", cache: null };
  if (parts[1] === "_api") {
    const name = parts[3] ?? "";
    if (parts[2] !== "v1" || !/^[a-z-]{1,32}$/.test(name)) return { route: "api/other", cache: null };
    const cache = API_CACHE_ROUTES.has(name) && parts[4] && CACHE_NAME.test(parts[4]) ? parts[4] : null;
    return { route: `api/${name}`, cache };
  }
  const cache = parts[1] && CACHE_NAME.test(parts[1]) ? parts[1] : null;
  if (!cache) return { route: "other", cache: null };
  if (parts.length === 3) {
    const file = parts[2]!;
    if (file === "nix-cache-info" || file === "attic-cache-info") return { route: file, cache };
    if (file.endsWith(".narinfo")) return { route: "narinfo", cache };
    if (file.endsWith(".ls")) return { route: "listing", cache };
  }
  if (parts.length === 4 && parts[2] === "nar") return { route: "nar", cache };
  if (parts[2] === "log") return { route: "build-log", cache };
  return { route: "cache/other", cache };
}

export interface LogEntry {
  time: string;
  id: string;
  client: string;
  method: string;
  path: string;
  route: string;
  cache: string | null;
  sub: string | null;
  jti: string | null;
  status: number;
  bytes_in: number;
  bytes_out: number;
  duration_ms: number;
  why: string | null;
}

/** A value in a text log line: bare when plain, else JSON-quoted, so a line is always one line. */
function field(v: string | null): string {
  if (v === null || v === "") return "-";
  return /^[\x21-\x7e]+$/.test(v) && !v.includes('"') ? v : JSON.stringify(v);
}

export function formatEntry(e: LogEntry, format: "text" | "json"): string {
  if (format === "json") return JSON.stringify(e);
  let line = `${e.time} ${field(e.client)} ${e.method} ${field(e.path)} ${e.status} ${e.duration_ms.toFixed(1)}ms`
    + ` cache=${field(e.cache)} sub=${field(e.sub)} in=${e.bytes_in} out=${e.bytes_out} id=${e.id}`;
  if (e.jti) line += ` jti=${field(e.jti)}`;
  if (e.why) line += ` why=${JSON.stringify(e.why)}`;
  return line;
}
