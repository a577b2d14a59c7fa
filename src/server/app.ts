import { Elysia } from "elysia";
import { GarretError, STATUS_OF } from "../errors.ts";
import type { Garret } from "../cache/context.ts";
import { authorize } from "../cache/access.ts";
import { cacheConfigView, configureCache, createCache, destroyCache } from "../cache/caches.ts";
import { missingPaths, narInfo, nixCacheInfo, openCacheNar } from "../cache/paths.ts";
import { uploadPath } from "../cache/upload.ts";
import { deletePath, listPins, pinPath, unpinPath } from "../cache/pins.ts";
import { callerOf } from "./auth.ts";
import { HEAD_MARKER } from "./head.ts";
import { jsonBody, splitPreamble, uploadBody } from "./body.ts";

export function errorResponse(code: number, error: string, message: string): Response {
  return Response.json({ code, error, message }, { status: code });
}

function toResponse(err: unknown): Response {
  if (err instanceof GarretError) return errorResponse(STATUS_OF[err.code], err.code, err.message);
  console.error(`internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  return errorResponse(500, "InternalServerError", "The server failed to handle this request.");
}

const text = (body: string, type: string): Response =>
  new Response(body, { headers: { "content-type": type } });

/** HTTP routes only: each one reads the request, calls domain code and shapes the answer. */
export function buildApp(g: Garret) {
  return new Elysia()
    .onError(({ error, code }) => {
      if (code === "NOT_FOUND") return errorResponse(404, "NotFound", "No such endpoint.");
      return toResponse(error);
    })
    .get("/", () => text("garret: a Nix binary cache. See /<cache>/nix-cache-info.\n", "text/plain"))

    // Attic's API
    .post("/_api/v1/get-missing-paths", async ({ request }) =>
      Response.json(await missingPaths(g, await callerOf(g, request), await jsonBody(request))))
    .put("/_api/v1/upload-path", async ({ request }) => {
      const caller = await callerOf(g, request);
      const encoding = (request.headers.get("content-encoding") ?? "").trim().toLowerCase();
      const header = request.headers.get("x-attic-nar-info");
      const preamble = request.headers.get("x-attic-nar-info-preamble-size");
      let info: unknown;
      let body: AsyncIterable<Uint8Array>;
      if (header !== null) {
        try {
          info = JSON.parse(header);
        } catch {
          throw new GarretError("InvalidNarInfo", "X-Attic-Nar-Info is not valid JSON");
        }
        body = await uploadBody(request);
      } else if (preamble !== null && request.body) {
        ({ info, rest: body } = await splitPreamble(request.body, Number(preamble)));
      } else {
        throw new GarretError("RequestError", "send the path's metadata in X-Attic-Nar-Info or a preamble");
      }
      return Response.json(await uploadPath(g, caller, info, body, encoding));
    })
    .get("/_api/v1/cache-config/:cache", async ({ request, params }) => {
      const cache = await authorize(g, await callerOf(g, request), params.cache, "any");
      return Response.json(cacheConfigView(g, cache));
    })
    .post("/_api/v1/cache-config/:cache", async ({ request, params }) => {
      const cache = await createCache(g, await callerOf(g, request), params.cache, await jsonBody(request));
      return Response.json(cacheConfigView(g, cache));
    })
    .patch("/_api/v1/cache-config/:cache", async ({ request, params }) => {
      const cache = await configureCache(g, await callerOf(g, request), params.cache, await jsonBody(request));
      return Response.json(cacheConfigView(g, cache));
    })
    .delete("/_api/v1/cache-config/:cache", async ({ request, params }) => {
      await destroyCache(g, await callerOf(g, request), params.cache);
      return Response.json({});
    })

    // Pins and path deletion (garbage collection, issue 5)
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
    })

    // The Nix binary cache protocol
    .get("/:cache/nix-cache-info", async ({ request, params }) => {
      const cache = await authorize(g, await callerOf(g, request), params.cache, "pull");
      return text(nixCacheInfo(cache), "text/x-nix-cache-info");
    })
    .get("/:cache/attic-cache-info", async ({ request, params }) => {
      const cache = await authorize(g, await callerOf(g, request), params.cache, "any");
      return Response.json(cacheConfigView(g, cache));
    })
    .get("/:cache/:file", async ({ request, params }) => {
      const m = /^([0-9a-z]+)\.narinfo$/.exec(params.file);
      if (!m) throw new GarretError("NoSuchObject", "The requested object does not exist.");
      const body = await narInfo(g, await callerOf(g, request), params.cache, m[1]!);
      return text(body, "text/x-nix-narinfo");
    })
    .get("/:cache/nar/:file", async ({ request, params }) => {
      const head = request.headers.has(HEAD_MARKER);
      const answer = await openCacheNar(g, await callerOf(g, request), params.cache, params.file,
        request.headers.get("range"), head);
      const base = { "content-type": "application/x-nix-nar", "accept-ranges": "bytes" };
      if (answer.kind === "head") {
        return new Response(null, { headers: { ...base, "content-length": String(answer.size) } });
      }
      if (answer.kind === "file") {
        if (!answer.range) return new Response(answer.body, { headers: base });
        return new Response(answer.body, {
          status: 206,
          headers: { ...base, "content-range": `bytes ${answer.range.start}-${answer.range.end}/${answer.size}` },
        });
      }
      if (answer.kind === "redirect") {
        return new Response(null, { status: 302, headers: { location: answer.url, "cache-control": "no-store" } });
      }
      if (answer.kind === "unsatisfiable") {
        return new Response(null, { status: 416, headers: { ...base, "content-range": `bytes */${answer.size}` } });
      }
      const { nar } = answer;
      if (!nar.range) {
        return new Response(nar.stream, { headers: { ...base, "content-length": String(nar.size) } });
      }
      return new Response(nar.stream, {
        status: 206,
        headers: {
          ...base,
          "content-length": String(nar.range.end - nar.range.start + 1),
          "content-range": `bytes ${nar.range.start}-${nar.range.end}/${nar.size}`,
        },
      });
    });
}

export type GarretApp = ReturnType<typeof buildApp>;
