import type { Server } from "bun";
import type { Garret } from "../cache/context.ts";
import { buildApp, type GarretApp } from "./app.ts";
import { NativePush } from "../cache/native-push.ts";
import { markHead } from "./head.ts";
import type { ListenAddress } from "../config.ts";
import type { OpsOptions } from "./ops.ts";
import { attachInfo, classify, formatEntry, requestId, type RequestInfo } from "./request-log.ts";

/**
 * HEAD runs the GET route and drops the body. Elysia's own HEAD path loses Content-Length, which
 * Nix and curl use to learn a NAR's size, so it is done here. The GET is a copy of the request
 * made natively (headers and all), marked as a HEAD's on the object itself; an answer that has
 * no body already (a NAR's HEAD, with its Content-Length) goes out as it is.
 */
async function handleHead(app: GarretApp, request: Request, info: RequestInfo): Promise<Response> {
  const get = new Request(request, { method: "GET" });
  markHead(get);
  attachInfo(get, info);
  const res = await app.handle(get);
  if (res.body === null) return res;
  await res.body.cancel();
  return new Response(null, { status: res.status, headers: res.headers });
}


/**
 * Where the path of a request's URL starts. Bun gives an absolute URL built from the Host header,
 * or only the path when that header is empty or absent (HTTP/1.0).
 */
function pathStart(url: string): number {
  if (url.startsWith("/")) return 0;
  const start = url.indexOf("/", url.indexOf("//") + 2);
  return start < 0 ? url.length : start;
}

/** The path of a request URL, without its query: a URL object per logged request cost more. */
function pathOf(url: string): string {
  const start = pathStart(url);
  const query = url.indexOf("?", start);
  return (query < 0 ? url.slice(start) : url.slice(start, query)) || "/";
}

/**
 * The router looks for the path from a fixed offset (11: past "https://" and three characters of
 * host), so with a host of 1-3 characters `GET /zzzz/b1/nix-cache-info` was routed as
 * `/b1/nix-cache-info`, past a reverse proxy's path rules. Such a request (or one with no host at
 * all) is handed over under a URL the router reads right; every other request is passed as it is.
 */
function routable(request: Request, url: string): Request {
  const start = pathStart(url);
  if (start >= 11 && url.indexOf("/", 11) === start) return request;
  return new Request(`http://localhost${url.slice(start) || "/"}`, request);
}

/**
 * Starts the HTTP server. Bun's idle timeout is raised to its maximum so a slow client stream is
 * never cut while it still moves, and the request body limit is lifted (NARs can be many GiB);
 * upload size is checked against the claimed nar_size while streaming instead.
 */
export interface RunningServer {
  server: Server<undefined>;
  /** Requests being handled right now, uploads included, and staged NARs still being synced. */
  inFlight(): number;
}

export interface ServerOptions extends OpsOptions {
  logFormat: "text" | "json";
}

function declaredLength(request: Request): number {
  const n = Number(request.headers.get("content-length"));
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/** The bytes a response declares it sends (streamed bodies without a length count as 0). */
function bytesOut(response: Response): number {
  const n = Number(response.headers.get("content-length"));
  return Number.isFinite(n) ? n : 0;
}

export function startServer(
  g: Garret, listen: ListenAddress, log: (line: string) => void,
  opts: ServerOptions = { logFormat: "text", metricsToken: null },
): RunningServer {
  const push = new NativePush(g, g.upload);
  const app = buildApp(g, opts, push);
  let inFlight = 0;
  const server = Bun.serve({
    hostname: listen.hostname,
    port: listen.port,
    // Bun shares a port between processes unless told not to (SO_REUSEPORT): a second server on
    // a taken port would start and split the requests. It must fail with EADDRINUSE instead.
    reusePort: false,
    idleTimeout: 255,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    // A production server: Bun's development mode (its default unless NODE_ENV=production) serves
    // debug error pages; every error here is answered as JSON by the app anyway.
    development: false,
    async fetch(request, srv) {
      const started = performance.now();
      // Read once: each read of these builds a new string from the native request.
      const url = request.url;
      const method = request.method;
      inFlight++;
      try {
        const info: RequestInfo = { id: requestId(request.headers.get("x-request-id")), client: srv.requestIP(request)?.address ?? null, sub: null, jti: null, why: null, bytesIn: 0 };
        const routed = routable(request, url);
        attachInfo(routed, info);
        const response = method === "HEAD" ? await handleHead(app, routed, info) : await app.handle(routed);
        try {
          response.headers.set("x-request-id", info.id);
          // Errors are answered alike whatever the cache (a private one looks missing): never stored.
          if (response.status >= 400 && !response.headers.has("cache-control")) response.headers.set("cache-control", "no-store");
        } catch {
          // immutable headers (a proxied response): it goes out as it is
        }
        const path = pathOf(url);
        const { route, cache } = classify(path);
        const seconds = (performance.now() - started) / 1000;
        const out = method === "HEAD" ? 0 : bytesOut(response);
        // Bodies no route counted as they streamed (nix copy PUTs, JSON): their declared length.
        if (info.bytesIn === 0 && method !== "GET" && method !== "HEAD") info.bytesIn = declaredLength(request);
        const m = g.metrics;
        if (m) {
          m.requests.inc({ route, method, status: String(response.status) });
          if (info.bytesIn) m.bytesIn.inc({ route }, info.bytesIn);
          if (out) m.bytesOut.inc({ route }, out);
          const put = method === "PUT";
          if (route === "narinfo" && !put) m.narinfoSeconds.observe(seconds);
          // Uploads: Attic's upload-path, and a native `nix copy` NAR PUT
          else if (route === "api/upload-path" || (put && route === "nar")) m.uploadSeconds.observe(seconds);
        }
        log(formatEntry({
          time: new Date().toISOString(), id: info.id, client: info.client ?? "",
          method, path, route, cache, sub: info.sub, jti: info.jti, status: response.status,
          bytes_in: info.bytesIn, bytes_out: out, duration_ms: Math.round(seconds * 10000) / 10, why: info.why,
        }, opts.logFormat));
        return response;
      } finally {
        inFlight--;
      }
    },
  });
  // A staged NAR's packs are synced just after its PUT answers: shutdown waits for that too.
  return { server, inFlight: () => inFlight + push.pendingSeals() };
}

/**
 * Stops accepting connections, lets requests in flight (uploads above all) finish for up to
 * `graceMs`, then cuts the rest: an interrupted upload discards what it wrote, so every path is
 * either fully present or absent.
 */
export async function shutdown(running: RunningServer, graceMs: number, log: (line: string) => void): Promise<void> {
  running.server.stop(false);
  const deadline = Date.now() + graceMs;
  while (running.inFlight() > 0 && Date.now() < deadline) await Bun.sleep(50);
  if (running.inFlight() > 0) {
    log(`shutdown: aborting ${running.inFlight()} request(s) still in flight`);
    running.server.stop(true);
    const settle = Date.now() + 2000;
    while (running.inFlight() > 0 && Date.now() < settle) await Bun.sleep(20);
  }
}
