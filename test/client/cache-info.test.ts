/**
 * `garret cache info` shows a cache's figures (paths, logical and stored bytes, dedup saving, last
 * push; --json too), and `garret cache configure` sets --retention and --quota (issue 17).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { requireNix, runOk, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { loginClient, runAsync, runAsyncOk, wideClosure, type Client } from "./helpers.ts";

requireNix();

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startServer();
  client = loginClient(server);
  // Retention and quota need their own permission, beyond configure-cache.
  const token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*",
    "--configure-cache-retention", "*");
  runOk(garretCmd("login", "local", server.url, token), { env: client.env });
  client = { ...client, token };
});

afterAll(async () => {
  await server?.stop();
});

const newCache = async (): Promise<string> => {
  const name = `info-${uniqueTag()}`;
  await createCache(server.url, client.token, name);
  return name;
};
const info = async (cache: string) =>
  JSON.parse((await runAsyncOk(garretCmd("cache", "info", `local:${cache}`, "--json"), { env: client.env })).stdout);
const infoText = async (cache: string) => (await runAsyncOk(garretCmd("cache", "info", `local:${cache}`), { env: client.env })).stdout;
const configure = (cache: string, ...args: string[]) => runAsync(garretCmd("cache", "configure", `local:${cache}`, ...args), { env: client.env });

describe("cache info", () => {
  test("an empty cache: no paths, never pushed to", async () => {
    const cache = await newCache();
    const j = await info(cache);
    expect(j).toMatchObject({ paths: 0, nar_bytes: 0, stored_bytes: 0, dedup_saving: 0, last_push: null, quota_bytes: null });
    expect(typeof j.public_key).toBe("string");
    const text = await infoText(cache);
    expect(text).toContain("  Paths: 0\n");
    expect(text).toContain("  Last Push: never\n");
  });

  test("after a push: the server's figures, the dedup saving and when", async () => {
    const cache = await newCache();
    const before = Date.now();
    const { top, closure } = wideClosure(uniqueTag(), 6, 20000);
    await runAsyncOk(garretCmd("push", `local:${cache}`, "--json", top), { env: client.env });
    const narBytes = closure.reduce((n, p) => n + Number(runOk(["nix-store", "-q", "--size", p]).trim()), 0);
    const j = await info(cache);
    const stats = await (await fetch(`${server.url}/_api/v1/caches/${cache}/stats`, { headers: { authorization: `Bearer ${client.token}` } })).json() as
      { paths: number; nar_bytes: number; stored_bytes: number; last_push_at: number };
    expect(j.paths).toBe(closure.length);
    expect(j.nar_bytes).toBe(narBytes);
    expect(j.stored_bytes).toBe(stats.stored_bytes);
    expect(j.stored_bytes).toBeGreaterThan(0);
    // The leaves are repetitive text: compression and chunking keep well under the NAR bytes.
    expect(j.dedup_saving).toBeCloseTo(1 - stats.stored_bytes / stats.nar_bytes, 3);
    expect(j.dedup_saving).toBeGreaterThan(0);
    expect(j.dedup_saving).toBeLessThan(1);
    expect(Date.parse(j.last_push)).toBe(stats.last_push_at * 1000);
    expect(Date.parse(j.last_push)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    const text = await infoText(cache);
    expect(text).toContain(`  Paths: ${closure.length}\n`);
    expect(text).toMatch(/\n {2}Logical Size \(NAR\): [\d.]+ KiB\n {2}Stored Size: [\d.]+ (B|KiB)\n {2}Dedup Saving: [\d.]+% \([\d.]+ (B|KiB)\)\n/);
    expect(text).toMatch(/\n {2}Last Push: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)\n/);
  });
});

describe("cache configure --retention and --quota", () => {
  test("--retention takes the one duration grammar; forever and default", async () => {
    const cache = await newCache();
    expect((await configure(cache, "--retention", "3mo")).code).toBe(0);
    expect((await info(cache)).retention_period).toEqual({ Period: 3 * 2629746 });
    expect(await infoText(cache)).toContain("  Retention Period: 3mo (7889238 s)\n");
    expect((await configure(cache, "--retention", "forever")).code).toBe(0);
    expect((await info(cache)).retention_period).toEqual({ Period: 0 });
    expect(await infoText(cache)).toContain("  Retention Period: forever\n");
    expect((await configure(cache, "--retention", "default")).code).toBe(0);
    expect((await info(cache)).retention_period).toBe("Global");
    const bad = await configure(cache, "--retention", "banana");
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain('--retention: expected seconds or a duration like');
    expect(bad.stderr).toContain('"banana"');
  });

  test("--quota takes a size; none removes it; 0 and nonsense are refused", async () => {
    const cache = await newCache();
    expect((await configure(cache, "--quota", "10G")).code).toBe(0);
    expect((await info(cache)).quota_bytes).toBe(10e9);
    expect(await infoText(cache)).toContain("  Quota: 9.31 GiB (10000000000 bytes)\n");
    expect((await configure(cache, "--quota", "512MiB")).code).toBe(0);
    expect((await info(cache)).quota_bytes).toBe(512 * 1024 * 1024);
    expect((await configure(cache, "--quota", "none")).code).toBe(0);
    expect((await info(cache)).quota_bytes).toBeNull();
    expect(await infoText(cache)).toContain("  Quota: none\n");
    const zero = await configure(cache, "--quota", "0");
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain("--quota 0 would evict every unpinned path");
    const bad = await configure(cache, "--quota", "10 parsecs");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--quota: expected bytes or a size like 500MB, 10G, 10GiB; got "10 parsecs"');
    expect((await info(cache)).quota_bytes).toBeNull();
  });
});
