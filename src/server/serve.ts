import type { Server } from "bun";
import type { Garret } from "../cache/context.ts";
import { buildApp, type GarretApp } from "./app.ts";
import { HEAD_MARKER } from "./head.ts";

export interface ListenAddress {
  hostname: string;
  port: number;
}

/**
 * HEAD runs the GET route and drops the body. Elysia's own HEAD path loses Content-Length, which
 * Nix and curl use to learn a NAR's size, so it is done here.
 */
async function handleHead(app: GarretApp, request: Request): Promise<Response> {
  const headers = new Headers(request.headers);
  headers.set(HEAD_MARKER, "1");
  const res = await app.handle(new Request(request.url, { method: "GET", headers }));
  await res.body?.cancel();
  return new Response(null, { status: res.status, headers: res.headers });
}

export function parseListen(value: string): ListenAddress {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new Error(`listen address must be HOST:PORT, got ${JSON.stringify(value)}`);
  return { hostname: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/**
 * Starts the HTTP server. Bun's idle timeout is raised to its maximum so a slow client stream is
 * never cut while it still moves, and the request body limit is lifted (NARs can be many GiB);
 * upload size is checked against the claimed nar_size while streaming instead.
 */
export function startServer(g: Garret, listen: ListenAddress, log: (line: string) => void): Server<undefined> {
  const app = buildApp(g);
  return Bun.serve({
    hostname: listen.hostname,
    port: listen.port,
    idleTimeout: 255,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    async fetch(request) {
      const started = performance.now();
      // Only this wrapper may set the HEAD marker.
      if (request.headers.has(HEAD_MARKER)) request.headers.delete(HEAD_MARKER);
      const response = request.method === "HEAD" ? await handleHead(app, request) : await app.handle(request);
      const url = new URL(request.url);
      const ms = (performance.now() - started).toFixed(1);
      log(`${request.method} ${url.pathname} ${response.status} ${ms}ms`);
      return response;
    },
  });
}
