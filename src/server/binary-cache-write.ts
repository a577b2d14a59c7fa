import { Elysia } from "elysia";
import { GarretError } from "../errors.ts";
import type { Garret } from "../cache/context.ts";
import { authorize } from "../cache/access.ts";
import { NativePush } from "../cache/native-push.ts";
import { callerOf } from "./auth.ts";
import { uploadBody, wholeBody } from "./body.ts";
import { infoOf } from "./request-log.ts";
import { putSideFile } from "../cache/side-files.ts";

const MAX_NARINFO = 1024 * 1024;

const encodingOf = (request: Request): string => (request.headers.get("content-encoding") ?? "").trim().toLowerCase();

/**
 * What Nix's HTTP binary cache store writes (`nix copy --to http://host/<cache>`): NAR PUTs
 * staged, narinfo PUTs validated and published, nix-cache-info PUTs ignored. Push on the cache is
 * needed for each; a private cache the caller cannot see answers as a missing one.
 */
export function binaryCacheWriteRoutes(g: Garret, push: NativePush = new NativePush(g)) {
  return new Elysia({ name: "binary-cache-write" })
    .put("/:cache/nix-cache-info", async ({ request, params }) => {
      // The cache's settings stay the server's; Nix writes this when its GET found none.
      await authorize(g, await callerOf(g, request), params.cache, "push");
      await request.body?.cancel();
      return new Response(null, { status: 204 });
    })
    .put("/:cache/log/:drv", async ({ request, params }) => {
      await putSideFile(g, await callerOf(g, request), params.cache, "log", params.drv, await uploadBody(request), encodingOf(request));
      return new Response(null, { status: 204 });
    })
    .put("/:cache/debuginfo/:id", async ({ request, params }) => {
      await putSideFile(g, await callerOf(g, request), params.cache, "debuginfo", params.id, await uploadBody(request), encodingOf(request));
      return new Response(null, { status: 204 });
    })
    .put("/:cache/nar/:file", async ({ request, params }) => {
      const caller = await callerOf(g, request);
      await push.putNar(caller, params.cache, params.file, (await wholeBody(request)) ?? await uploadBody(request));
      return new Response(null, { status: 204 });
    })
    .put("/:cache/:file", async ({ request, params }) => {
      const ls = /^([0-9a-z]+)\.ls$/.exec(params.file);
      if (ls) {
        await putSideFile(g, await callerOf(g, request), params.cache, "ls", ls[1]!, await uploadBody(request), encodingOf(request));
        return new Response(null, { status: 204 });
      }
      const m = /^([0-9a-z]+)\.narinfo$/.exec(params.file);
      if (!m) throw new GarretError("NoSuchObject", "The requested object does not exist.");
      const caller = await callerOf(g, request);
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > MAX_NARINFO) throw new GarretError("InvalidNarInfo", "a narinfo is at most 1 MiB");
      const text = await request.text();
      if (text.length > MAX_NARINFO) throw new GarretError("InvalidNarInfo", "a narinfo is at most 1 MiB");
      await push.putNarInfo(caller, params.cache, m[1]!, text, { client: infoOf(request)?.client ?? null });
      return new Response(null, { status: 204 });
    });
}
