import { Elysia } from "elysia";
import type { Garret } from "../cache/context.ts";
import { atticApiRoutes } from "./attic-api.ts";
import { binaryCacheRoutes } from "./binary-cache.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { garretApiRoutes } from "./garret-api.ts";
import { errorResponse, toResponse } from "./responses.ts";
import { opsRoutes, type OpsOptions } from "./ops.ts";
import { noteRefusal } from "./request-log.ts";
import { GarretError } from "../errors.ts";
import { StorageError } from "../store/storage.ts";
import { binaryCacheWriteRoutes } from "./binary-cache-write.ts";
import { NativePush } from "../cache/native-push.ts";

export { errorResponse };

/**
 * The HTTP app: one route file per protocol (Attic's API, garret's API, the Nix binary cache),
 * each translating requests into typed domain calls, and the browser dashboard (dashboard.ts). Errors from every one of them are answered
 * here, in one shape. The /_api routes are mounted before the binary cache's /:cache ones.
 */
export function buildApp(g: Garret, ops: OpsOptions = { metricsToken: null }, push = new NativePush(g, g.upload)) {
  return new Elysia()
    .onError({ as: "global" }, ({ error, code, request }) => {
      if (code === "NOT_FOUND") return errorResponse(404, "NotFound", "No such endpoint.");
      if (error instanceof GarretError) {
        if (error.code === "Unauthorized" || error.code === "Forbidden") noteRefusal(request, error.message);
      } else g.metrics?.errors.inc({ component: componentOf(error) });
      return toResponse(error);
    })
    .use(opsRoutes(g, ops))
    .use(dashboardRoutes())
    .use(atticApiRoutes(g))
    .use(garretApiRoutes(g))
    .use(binaryCacheRoutes(g, push))
    .use(binaryCacheWriteRoutes(g, push));
}

/** Which part failed, for the error counter: storage backends and database drivers name their errors. */
function componentOf(err: unknown): string {
  if (err instanceof StorageError) return "storage";
  const name = err instanceof Error ? err.name + " " + err.constructor.name : "";
  return /SQLite|Postgres|SQL/.test(name) ? "database" : "other";
}

export type GarretApp = ReturnType<typeof buildApp>;
