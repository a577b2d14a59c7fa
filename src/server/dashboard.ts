import { Elysia } from "elysia";
import indexHtml from "../../web/index.html" with { type: "text" };
import styleCss from "../../web/style.css" with { type: "text" };
// app.ts.txt is a link to app.ts: its text, embedded, while the type checker does not take the
// browser script (checked against the DOM by web/tsconfig.json) into the server's program.
import appTs from "../../web/app.ts.txt" with { type: "text" };
import { errorResponse } from "./responses.ts";

/**
 * The browser dashboard (issue 14): GET / and its assets under /_ui/ (no cache name starts with
 * `_`). The sources in web/ are embedded as text, so a checkout and the compiled binary serve the
 * same bytes; the page script is transpiled from TypeScript once, at start. Assets are named by
 * their content hash and cached for a year; the page itself is revalidated every time.
 */

interface Asset {
  path: string;
  body: string;
  type: string;
}

function asset(name: string, ext: string, body: string, type: string): Asset {
  const hash = Bun.hash(body).toString(36).slice(0, 10);
  return { path: `/_ui/${name}-${hash}.${ext}`, body, type };
}

const app = asset("app", "js", new Bun.Transpiler({ loader: "ts", target: "browser" }).transformSync(appTs), "text/javascript; charset=utf-8");
const style = asset("style", "css", styleCss, "text/css; charset=utf-8");
export const DASHBOARD_ASSETS: readonly Asset[] = [app, style];
export const DASHBOARD_PAGE = (indexHtml as unknown as string).replace("{{app}}", app.path).replace("{{style}}", style.path);

// No third-party origin is ever contacted: scripts, styles and requests stay on this server.
const SECURITY = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const page = (): Response => new Response(DASHBOARD_PAGE, {
  headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache", ...SECURITY },
});

const wantsHtml = (request: Request): boolean => (request.headers.get("accept") ?? "").includes("text/html");

export function dashboardRoutes() {
  const byPath = new Map(DASHBOARD_ASSETS.map((a) => [a.path, a]));
  return new Elysia({ name: "dashboard" })
    .get("/", page)
    .get("/_ui/:file", ({ params }) => {
      const a = byPath.get(`/_ui/${params.file}`);
      if (!a) return errorResponse(404, "NotFound", "No such endpoint.");
      return new Response(a.body, {
        headers: { "content-type": a.type, "cache-control": "public, max-age=31536000, immutable", ...SECURITY },
      });
    })
    // A substituter URL opened in a browser: the page, whatever the name (the page then asks the
    // API, which answers a hidden cache like a missing one). Anything else gets the 404 it got before.
    .get("/:cache", ({ request }) => (wantsHtml(request) ? page() : errorResponse(404, "NotFound", "No such endpoint.")))
    .get("/:cache/", ({ request }) => (wantsHtml(request) ? page() : errorResponse(404, "NotFound", "No such endpoint.")));
}
