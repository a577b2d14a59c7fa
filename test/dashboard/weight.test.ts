/**
 * Issue 14, acceptance 3 (first half): everything a dashboard page loads, together, is at most
 * 200 KiB uncompressed, and nothing is loaded from another origin. (The compiled binary serving the
 * dashboard from outside the checkout is in test/appliance/binary.test.ts.)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startServer, type TestServer } from "../helpers/server.ts";
import { pageWeight } from "../helpers/dashboard.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

test("the page and its assets weigh at most 200 KiB, all from this server", async () => {
  const { total, assets } = await pageWeight(server.url);
  expect(assets.length).toBeGreaterThanOrEqual(2);
  for (const a of assets) expect(a).toMatch(/^\/_ui\/[a-z]+-[0-9a-z]+\.(js|css)$/);
  expect(total).toBeLessThanOrEqual(200 * 1024);
  console.log(`dashboard page weight: ${total} bytes`);
});

test("assets are cached for a year under hashed names; the page is revalidated", async () => {
  const page = await fetch(`${server.url}/`);
  expect(page.headers.get("cache-control")).toBe("no-cache");
  expect(page.headers.get("content-type")).toStartWith("text/html");
  const [, app] = /src="(\/_ui\/app-[^"]+)"/.exec(await page.text())!;
  const res = await fetch(`${server.url}${app}`);
  expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
  expect(res.headers.get("content-type")).toStartWith("text/javascript");
  expect((await fetch(`${server.url}/_ui/app-0000000000.js`)).status).toBe(404);
});

test("a substituter URL is the page for a browser and the same 404 as before for anything else", async () => {
  for (const path of ["/some-cache", "/some-cache/"]) {
    const html = await fetch(`${server.url}${path}`, { headers: { accept: "text/html,application/xhtml+xml" } });
    expect(html.status).toBe(200);
    expect(await html.text()).toContain("<main");
    const other = await fetch(`${server.url}${path}`);
    expect(other.status).toBe(404);
    expect(await other.json()).toEqual({ code: 404, error: "NotFound", message: "No such endpoint." });
  }
});
