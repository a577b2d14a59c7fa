import { Elysia } from "elysia";
import { timingSafeEqual } from "node:crypto";
import type { Garret } from "../cache/context.ts";
import { tokenFromHeader } from "./auth.ts";
import { errorResponse } from "./responses.ts";

export interface OpsOptions {
  /** When set, /metrics wants `Authorization: Bearer <token>`. */
  metricsToken: string | null;
}

function sameToken(given: string | null, want: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  // Constant time over the expected token's length; a length mismatch is simply unequal.
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Reasons are short and carry no secret (a bucket name at most). */
async function probe(name: string, fn: () => Promise<void>): Promise<string | null> {
  try {
    await fn();
    return null;
  } catch (err) {
    return `${name}: ${(err as Error).message.split("\n")[0]}`;
  }
}

const NO_STORE = { "cache-control": "no-store" };

/** Operations: liveness, readiness (database and storage answer) and Prometheus metrics. */
export function opsRoutes(g: Garret, opts: OpsOptions) {
  return new Elysia({ name: "ops" })
    .get("/_api/v1/health", () => Response.json({ status: "ok" }, { headers: NO_STORE }))
    .get("/_api/v1/ready", async () => {
      const problems = (await Promise.all([probe("database", () => g.meta.ping()), probe("storage", () => g.storage.check())]))
        .filter((p): p is string => p !== null);
      if (problems.length === 0) return Response.json({ status: "ready" }, { headers: NO_STORE });
      return Response.json({ status: "unavailable", problems }, { status: 503, headers: NO_STORE });
    })
    .get("/metrics", ({ request }) => {
      if (opts.metricsToken && !sameToken(tokenFromHeader(request.headers.get("authorization")), opts.metricsToken)) {
        return errorResponse(401, "Unauthorized", "/metrics needs the metrics token.");
      }
      const body = g.metrics?.render() ?? "";
      return new Response(body, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8", ...NO_STORE } });
    });
}
