import { Elysia } from "elysia";
import { GarretError } from "../errors.ts";
import type { Garret } from "../cache/context.ts";
import { authorize } from "../cache/access.ts";
import { cacheConfigView } from "../cache/caches.ts";
import { narInfo, nixCacheInfo, openCacheNar, type NarAnswer } from "../cache/paths.ts";
import { callerOf, originOf } from "./auth.ts";
import { isHead } from "./head.ts";
import { text, toResponse } from "./responses.ts";
import type { NativePush } from "../cache/native-push.ts";
import { CONTENT_TYPE, getSideFile, type SideKind } from "../cache/side-files.ts";

/**
 * Cache-Control: a NAR's URL names its content, so it never changes; narinfos and nix-cache-info
 * change (a path purged, a cache reconfigured), so they are kept a minute. A private cache's
 * answers are `private`, which shared caches (proxies, CDNs) must not store. Only successful
 * answers carry these (errors are `no-store` for every cache alike, so a hidden cache still
 * answers exactly like a missing one).
 */
const IMMUTABLE = "max-age=31536000, immutable";
const SHORT = "max-age=60";
const cacheControl = (isPublic: boolean, policy: string): string => `${isPublic ? "public" : "private"}, ${policy}`;

/** Whether a cache the caller was just allowed to read is public (a memoised lookup). */
async function isPublic(g: Garret, name: string): Promise<boolean> {
  return (await g.meta.getCache(name))?.isPublic ?? false;
}

/** Shapes a NAR answer of the domain (a whole NAR, a range, a redirect, a HEAD) as HTTP. */
function narResponse(answer: NarAnswer, publicCache: boolean): Response {
  const base = { "content-type": "application/x-nix-nar", "accept-ranges": "bytes", "cache-control": cacheControl(publicCache, IMMUTABLE) };
  switch (answer.kind) {
    case "head":
      return new Response(null, { headers: { ...base, "content-length": String(answer.size) } });
    case "file":
      if (!answer.range) return new Response(answer.body, { headers: { ...base, "content-length": String(answer.body.size) } });
      return new Response(answer.body, {
        status: 206,
        headers: { ...base, "content-length": String(answer.body.size), "content-range": `bytes ${answer.range.start}-${answer.range.end}/${answer.size}` },
      });
    case "redirect":
      return new Response(null, { status: 302, headers: { location: answer.url, "cache-control": "no-store" } });
    case "unsatisfiable":
      return new Response(null, { status: 416, headers: { ...base, "content-range": `bytes */${answer.size}` } });
  }
  const { nar } = answer;
  if (!nar.range) return new Response(nar.stream, { headers: { ...base, "content-length": String(nar.size) } });
  return new Response(nar.stream, {
    status: 206,
    headers: {
      ...base,
      "content-length": String(nar.range.end - nar.range.start + 1),
      "content-range": `bytes ${nar.range.start}-${nar.range.end}/${nar.size}`,
    },
  });
}

/**
 * Answers "not there" (NoSuchObject; NoSuchCache, which a hidden cache answers too) here rather
 * than through Elysia's error path, which rebuilds the response: Nix asks for narinfos and NARs
 * that are missing on every path it pushes. The answer is toResponse's, as the error hook gives.
 */
async function orMissing(answer: () => Promise<Response>): Promise<Response> {
  try {
    return await answer();
  } catch (err) {
    if (err instanceof GarretError && (err.code === "NoSuchObject" || err.code === "NoSuchCache")) return toResponse(err);
    throw err;
  }
}

/** A build log, NAR listing or debug info link (src/cache/side-files.ts); never cached by proxies. */
async function sideFile(g: Garret, request: Request, cache: string, kind: SideKind, name: string): Promise<Response> {
  const body = await getSideFile(g, await callerOf(g, request), cache, kind, name);
  return new Response(body, { headers: { "content-type": CONTENT_TYPE[kind], "cache-control": "no-store" } });
}

/** The Nix binary cache protocol: what stock Nix reads under /<cache>/. */
export function binaryCacheRoutes(g: Garret, push?: NativePush) {
  return new Elysia({ name: "binary-cache" })
    .get("/:cache/nix-cache-info", async ({ request, params }) => {
      const cache = await authorize(g, await callerOf(g, request), params.cache, "pull");
      return text(nixCacheInfo(cache), "text/x-nix-cache-info", { "cache-control": cacheControl(cache.isPublic, SHORT) });
    })
    .get("/:cache/attic-cache-info", async ({ request, params }) => {
      const cache = await authorize(g, await callerOf(g, request), params.cache, "any");
      return Response.json(cacheConfigView(g, cache, originOf(request)), { headers: { "cache-control": cacheControl(cache.isPublic, SHORT) } });
    })
    .get("/:cache/log/:drv", async ({ request, params }) => sideFile(g, request, params.cache, "log", params.drv))
    .get("/:cache/debuginfo/:id", async ({ request, params }) => sideFile(g, request, params.cache, "debuginfo", params.id))
    .get("/:cache/:file", async ({ request, params }) => {
      const ls = /^([0-9a-z]+)\.ls$/.exec(params.file);
      if (ls) return sideFile(g, request, params.cache, "ls", ls[1]!);
      const m = /^([0-9a-z]+)\.narinfo$/.exec(params.file);
      if (!m) throw new GarretError("NoSuchObject", "The requested object does not exist.");
      return orMissing(async () => {
        const body = await narInfo(g, await callerOf(g, request), params.cache, m[1]!);
        return text(body, "text/x-nix-narinfo", { "cache-control": cacheControl(await isPublic(g, params.cache), SHORT) });
      });
    })
    .get("/:cache/nar/:file", async ({ request, params }) => orMissing(async () => {
      const head = isHead(request);
      const caller = await callerOf(g, request);
      if (head && push) {
        // A NAR staged by a native PUT: Nix asks before sending it, and need not send it twice.
        const staged = await push.isStaged(caller, params.cache, params.file);
        if (staged) return new Response(null, { headers: { "content-type": "application/x-nix-nar", "cache-control": "no-store", "content-length": String(staged.size) } });
      }
      const answer = await openCacheNar(g, caller, params.cache, params.file, request.headers.get("range"), head);
      return narResponse(answer, await isPublic(g, params.cache));
    }));
}
