import { Elysia } from "elysia";
import type { Garret } from "../cache/context.ts";
import { deletePath, listPins, pinPath, unpinPath } from "../cache/pins.ts";
import { callerOf } from "./auth.ts";
import { jsonBody } from "./body.ts";

/** garret's own endpoints under /_api/v1, beyond Attic's: pins and path deletion. */
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
    .delete("/_api/v1/paths/:cache/:hash", async ({ request, params }) => {
      const recursive = new URL(request.url).searchParams.get("recursive") === "true";
      return Response.json(await deletePath(g, await callerOf(g, request), params.cache, params.hash, recursive));
    });
}
