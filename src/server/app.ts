import { Elysia } from "elysia";
import type { Garret } from "../cache/context.ts";
import { atticApiRoutes } from "./attic-api.ts";
import { binaryCacheRoutes } from "./binary-cache.ts";
import { garretApiRoutes } from "./garret-api.ts";
import { errorResponse, text, toResponse } from "./responses.ts";

export { errorResponse };

/**
 * The HTTP app: one route file per protocol (Attic's API, garret's API, the Nix binary cache),
 * each translating requests into typed domain calls. Errors from every one of them are answered
 * here, in one shape. The /_api routes are mounted before the binary cache's /:cache ones.
 */
export function buildApp(g: Garret) {
  return new Elysia()
    .onError({ as: "global" }, ({ error, code }) => {
      if (code === "NOT_FOUND") return errorResponse(404, "NotFound", "No such endpoint.");
      return toResponse(error);
    })
    .get("/", () => text("garret: a Nix binary cache. See /<cache>/nix-cache-info.\n", "text/plain"))
    .use(atticApiRoutes(g))
    .use(garretApiRoutes(g))
    .use(binaryCacheRoutes(g));
}

export type GarretApp = ReturnType<typeof buildApp>;
