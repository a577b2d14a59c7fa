/**
 * Issue 6, acceptance 7 (first half): a 1 GiB path pushed through a client throttled to 20 MiB/s
 * (about 51 s on the wire) succeeds: neither the client nor the server cuts a transfer that is
 * still moving. The throttle is garret push's own --limit-rate, which paces the request body.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { buildExpr, requireNix, run, runOk, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { narinfoOf, pathInfo } from "../helpers/api.ts";
import { loginClient, runAsyncOk, type Client } from "./helpers.ts";

requireNix();

const GiB = 1024 ** 3;
let server: TestServer;
let client: Client;
let big: string | null = null;

beforeAll(async () => {
  server = await startServer();
  client = loginClient(server);
});

afterAll(async () => {
  await server?.stop();
  if (server) rmSync(server.dataDir, { recursive: true, force: true });
  if (big) run(["nix-store", "--delete", big]);
});

describe("slow, big push", () => {
  test("1 GiB at 20 MiB/s succeeds", async () => {
    const cache = `big-${uniqueTag()}`;
    await createCache(server.url, client.token, cache);
    big = buildExpr(`derivation { name = "garret-1gib-${uniqueTag()}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "/usr/bin/head -c ${GiB} /dev/urandom > $out" ]; }`);
    const info = pathInfo(big);
    expect(info.narSize).toBeGreaterThan(GiB);

    const r = await runAsyncOk(garretCmd("push", `local:${cache}`, "--json", "--limit-rate", "20M", big), { env: client.env });
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ closure: 1, uploaded: 1, failed: 0, retries: 0 });
    const secs = r.ms / 1000;
    const rate = info.narSize / 1048576 / secs;
    console.log(`1 GiB push through --limit-rate 20M: ${secs.toFixed(1)} s, ${rate.toFixed(1)} MiB/s`);
    expect(rate).toBeLessThan(21); // the throttle really held the transfer for ~50 s
    expect(server.log()).toMatch(/PUT \/_api\/v1\/upload-path 200 \d{5,}\.\dms/); // one request, > 10 s long

    const narinfo = await narinfoOf(server.url, cache, big, client.token);
    expect(Number(narinfo.NarSize)).toBe(info.narSize);
    runOk(["nix-store", "--delete", big]);
    big = null;
  }, 170000);
});
