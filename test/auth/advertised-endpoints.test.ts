/**
 * Issue 16: values an Attic client cannot read are refused on input (a retention period above
 * 2^32-1 seconds), and with no public URL configured the advertised endpoints follow the request's
 * Host (behind a proxy), not the listen address.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let withUrl: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startServer();
  withUrl = await startServer({ args: ["--public-url", "https://cache.example.org"] });
  admin = mintToken(server.dataDir, "--pull", "*", "--create-cache", "*", "--configure-cache", "*", "--configure-cache-retention", "*");
  await createCache(server.url, admin, "adv");
  await createCache(withUrl.url, mintToken(withUrl.dataDir, "--pull", "*", "--create-cache", "*"), "adv", { is_public: true });
});
afterAll(async () => {
  await server?.stop();
  await withUrl?.stop();
});

const view = async (url: string, headers: Record<string, string>) =>
  (await (await fetch(`${url}/_api/v1/cache-config/adv`, { headers: { authorization: `Bearer ${admin}`, ...headers } })).json()) as
    { api_endpoint: string; substituter_endpoint: string };

test("no public URL: endpoints follow the request's Host (and a proxy's X-Forwarded-Proto)", async () => {
  expect(await view(server.url, { host: "cache.internal:8443" })).toMatchObject({
    api_endpoint: "http://cache.internal:8443/", substituter_endpoint: "http://cache.internal:8443/adv",
  });
  expect((await view(server.url, { host: "[::1]:9000", "x-forwarded-proto": "https" })).api_endpoint).toBe("https://[::1]:9000/");
  // A malformed Host falls back to the listen address.
  expect((await view(server.url, { host: "bad host/x" })).api_endpoint).toBe(`${server.url}/`);
});

test("a configured public URL wins over Host", async () => {
  const res = await fetch(`${withUrl.url}/adv/attic-cache-info`, { headers: { host: "evil.example" } });
  expect(((await res.json()) as { api_endpoint: string }).api_endpoint).toBe("https://cache.example.org/");
});

test("a retention period above 2^32-1 seconds is refused with 400 RequestError", async () => {
  const patch = (period: number) => fetch(`${server.url}/_api/v1/cache-config/adv`, {
    method: "PATCH", headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ retention_period: { Period: period } }),
  });
  const bad = await patch(2 ** 32);
  expect(bad.status).toBe(400);
  expect(await bad.json()).toMatchObject({ code: 400, error: "RequestError" });
  expect((await patch(2 ** 32 - 1)).status).toBe(200);
});
