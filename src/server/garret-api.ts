import { Elysia } from "elysia";
import type { Garret } from "../cache/context.ts";
import { deletePath, listPins, pinPath, unpinPath } from "../cache/pins.ts";
import { describeCaller, exchangeToken } from "../cache/tokens.ts";
import { GARRET_PATHS } from "../api/garret.ts";
import { callerOf } from "./auth.ts";
import { jsonBody } from "./body.ts";
import { cacheLog, purgeUploader, purgeUploaderEverywhere } from "../cache/provenance.ts";
import { cachePath, cacheStats, listCachePaths, listVisibleCaches, serverStats } from "../cache/stats.ts";

/** garret's own endpoints under /_api/v1, beyond Attic's: pins, path deletion, and the dashboard's reads. */
export function garretApiRoutes(g: Garret) {
  return new Elysia({ name: "garret-api" })
    .get("/_api/v1/pins/:cache", async ({ request, params }) =>
      Response.json(await listPins(g, await callerOf(g, request), params.cache)))
    .put("/_api/v1/pins/:cache/:name", async ({ request, params }) =>
      Response.json(await pinPath(g, await callerOf(g, request), params.cache, params.name, await jsonBody(request))))
    .delete("/_api/v1/pins/:cache/:name", async ({ request, params }) => {
      await unpinPath(g, await callerOf(g, request), params.cache, params.name);
      return Response.json({});
    })
    .get("/_api/v1/cache-log/:cache", async ({ request, params }) => {
      const q = new URL(request.url).searchParams;
      return Response.json(await cacheLog(g, await callerOf(g, request), params.cache, {
        sub: q.get("uploaded_by") ?? undefined, tokenId: q.get("token_id") ?? undefined,
      }));
    })
    .post("/_api/v1/cache-purge", async ({ request }) =>
      Response.json(await purgeUploaderEverywhere(g, await callerOf(g, request), await jsonBody(request))))
    .post("/_api/v1/cache-purge/:cache", async ({ request, params }) =>
      Response.json(await purgeUploader(g, await callerOf(g, request), params.cache, await jsonBody(request))))
    .get(GARRET_PATHS.whoami, async ({ request }) => Response.json(describeCaller(await callerOf(g, request))))
    .post(GARRET_PATHS.tokenExchange, async ({ request }) =>
      Response.json(await exchangeToken(g, await callerOf(g, request), await jsonBody(request))))
    .delete("/_api/v1/paths/:cache/:hash", async ({ request, params }) => {
      const recursive = new URL(request.url).searchParams.get("recursive") === "true";
      return Response.json(await deletePath(g, await callerOf(g, request), params.cache, params.hash, recursive));
    })
    // The dashboard's reads (issue 14); each answers a hidden cache exactly as a missing one.
    .get("/_api/v1/caches", async ({ request }) => Response.json(await listVisibleCaches(g, await callerOf(g, request))))
    .get("/_api/v1/caches/:cache/stats", async ({ request, params }) =>
      Response.json(await cacheStats(g, await callerOf(g, request), params.cache)))
    .get("/_api/v1/caches/:cache/paths", async ({ request, params }) => {
      const q = new URL(request.url).searchParams;
      return Response.json(await listCachePaths(g, await callerOf(g, request), params.cache,
        { q: q.get("q"), limit: q.get("limit"), cursor: q.get("cursor") }));
    })
    .get("/_api/v1/caches/:cache/paths/:hash", async ({ request, params }) =>
      Response.json(await cachePath(g, await callerOf(g, request), params.cache, params.hash)))
    .get("/_api/v1/server/stats", async ({ request }) => Response.json(await serverStats(g, await callerOf(g, request))));
}
