/**
 * Issue 6, acceptance 2: paths signed by one of the cache's upstream keys are skipped and counted;
 * --ignore-upstream-cache-filter pushes them anyway; the cache's own key list decides.
 */
import { beforeAll, afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { buildClosure, requireNix, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { storeHashOf } from "../helpers/api.ts";
import { loginClient, runAsyncOk, type Client } from "./helpers.ts";

requireNix();

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startServer();
  client = loginClient(server);
});

afterAll(async () => {
  await server?.stop();
});

/** Signs `path` locally with a fresh key called `keyName` (as if it came from that cache). */
function signAs(keyName: string, path: string): void {
  const dir = tempDir("garret-key-");
  runOk(["nix-store", "--generate-binary-cache-key", keyName, join(dir, "sk"), join(dir, "pk")]);
  runOk(["nix", "store", "sign", "--key-file", join(dir, "sk"), path]);
  const sigs = JSON.parse(runOk(["nix", "path-info", "--json", path]))[0].signatures as string[];
  if (!sigs.some((s) => s.startsWith(`${keyName}:`))) throw new Error(`signing ${path} as ${keyName} did not stick`);
}

const present = async (cache: string, path: string): Promise<boolean> =>
  (await fetch(`${server.url}/${cache}/${storeHashOf(path)}.narinfo`, { headers: { authorization: `Bearer ${client.token}` } })).status === 200;

describe("upstream filter", () => {
  let closure: { top: string; dep: string };

  beforeAll(() => {
    closure = buildClosure(uniqueTag());
    signAs("cache.nixos.org-1", closure.dep);
  });

  test("a path signed by cache.nixos.org-1 is skipped and counted (default key list)", async () => {
    const cache = `up-${uniqueTag()}`;
    await createCache(server.url, client.token, cache);
    const r = await runAsyncOk(garretCmd("push", `local:${cache}`, closure.top), { env: client.env });
    expect(r.stdout.split("\n")[0]).toBe(`Pushing 1 path to ${cache} (0 already cached, 1 in upstream)`);
    const j = JSON.parse((await runAsyncOk(garretCmd("push", `local:${cache}`, "--json", closure.top), { env: client.env })).stdout);
    expect(j).toMatchObject({ closure: 2, upstream: 1, alreadyCached: 1, uploaded: 0 });
    expect(await present(cache, closure.top)).toBe(true);
    expect(await present(cache, closure.dep)).toBe(false);
  });

  test("--ignore-upstream-cache-filter pushes it anyway", async () => {
    const cache = `up-all-${uniqueTag()}`;
    await createCache(server.url, client.token, cache);
    const j = JSON.parse((await runAsyncOk(garretCmd("push", `local:${cache}`, "--json",
      "--ignore-upstream-cache-filter", closure.top), { env: client.env })).stdout);
    expect(j).toMatchObject({ closure: 2, upstream: 0 });
    expect(j.uploaded + j.deduplicated).toBe(2); // the NAR bytes may already be in another cache
    expect(await present(cache, closure.dep)).toBe(true);
  });

  test("the cache's upstream_cache_key_names decide which keys count", async () => {
    const none = `up-none-${uniqueTag()}`;
    await createCache(server.url, client.token, none, { upstream_cache_key_names: [] });
    const a = JSON.parse((await runAsyncOk(garretCmd("push", `local:${none}`, "--json", closure.top), { env: client.env })).stdout);
    expect(a).toMatchObject({ upstream: 0 });
    expect(a.uploaded + a.deduplicated).toBe(2);

    const corp = `up-corp-${uniqueTag()}`;
    await createCache(server.url, client.token, corp, { upstream_cache_key_names: ["corp-cache-1"] });
    const other = buildClosure(uniqueTag());
    signAs("corp-cache-1", other.dep);
    const b = JSON.parse((await runAsyncOk(garretCmd("push", `local:${corp}`, "--json", other.top, closure.top), { env: client.env })).stdout);
    // other.dep is corp-signed (skipped); closure.dep's cache.nixos.org-1 signature does not count here.
    expect(b).toMatchObject({ closure: 4, upstream: 1 });
    expect(b.uploaded + b.deduplicated).toBe(3);
    expect(await present(corp, other.dep)).toBe(false);
    expect(await present(corp, closure.dep)).toBe(true);
  });
});
