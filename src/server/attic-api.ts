import { Elysia } from "elysia";
import { GarretError } from "../errors.ts";
import type { Garret } from "../cache/context.ts";
import { authorize } from "../cache/access.ts";
import { cacheConfigView, configureCache, createCache, destroyCache } from "../cache/caches.ts";
import { missingPaths } from "../cache/paths.ts";
import { uploadPath } from "../cache/upload.ts";
import { callerOf, originOf } from "./auth.ts";
import { countedBody, infoOf } from "./request-log.ts";
import { jsonBody, splitPreamble, uploadBody } from "./body.ts";

/** Reads an upload's metadata from the X-Attic-Nar-Info header or the JSON preamble of its body. */
async function uploadRequest(request: Request): Promise<{ info: unknown; body: AsyncIterable<Uint8Array> }> {
  const header = request.headers.get("x-attic-nar-info");
  const preamble = request.headers.get("x-attic-nar-info-preamble-size");
  if (header !== null) {
    let info: unknown;
    try {
      info = JSON.parse(header);
    } catch {
      throw new GarretError("InvalidNarInfo", "X-Attic-Nar-Info is not valid JSON");
    }
    return { info, body: await uploadBody(request) };
  }
  if (preamble !== null && request.body) {
    const { info, rest } = await splitPreamble(request.body, Number(preamble));
    return { info, body: rest };
  }
  throw new GarretError("RequestError", "send the path's metadata in X-Attic-Nar-Info or a preamble");
}

/** Attic's API (/_api/v1), which Attic's own client speaks unchanged. */
export function atticApiRoutes(g: Garret) {
  return new Elysia({ name: "attic-api" })
    .post("/_api/v1/get-missing-paths", async ({ request }) =>
      Response.json(await missingPaths(g, await callerOf(g, request), await jsonBody(request))))
    .put("/_api/v1/upload-path", async ({ request }) => {
      const caller = await callerOf(g, request);
      const encoding = (request.headers.get("content-encoding") ?? "").trim().toLowerCase();
      const { info, body } = await uploadRequest(request);
      return Response.json(await uploadPath(g, caller, info, countedBody(request, body), encoding,
        { client: infoOf(request)?.client ?? null }));
    })
    .get("/_api/v1/cache-config/:cache", async ({ request, params }) => {
      const cache = await authorize(g, await callerOf(g, request), params.cache, "any");
      return Response.json(cacheConfigView(g, cache, originOf(request)));
    })
    .post("/_api/v1/cache-config/:cache", async ({ request, params }) => {
      const cache = await createCache(g, await callerOf(g, request), params.cache, await jsonBody(request));
      return Response.json(cacheConfigView(g, cache, originOf(request)));
    })
    .patch("/_api/v1/cache-config/:cache", async ({ request, params }) => {
      const cache = await configureCache(g, await callerOf(g, request), params.cache, await jsonBody(request));
      return Response.json(cacheConfigView(g, cache, originOf(request)));
    })
    .delete("/_api/v1/cache-config/:cache", async ({ request, params }) => {
      await destroyCache(g, await callerOf(g, request), params.cache);
      return Response.json({});
    });
}
