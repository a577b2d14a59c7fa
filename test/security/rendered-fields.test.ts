/**
 * Threats (issue 12): fields that reach a rendered text format (nix-cache-info, narinfo) smuggle
 * in extra lines or break the format; pins tell a public cache's anonymous readers who pinned.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireNix, tempDir } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

requireNix();

let server: TestServer;
let admin: string;
let nar: Buffer;
let narHash: string;
const HASH = "1c0bp3fg7cgn7y0k8ixhrijhlzxqv4z7";
const PATH = `/nix/store/${HASH}-rendered`;

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*");
  await createCache(server.url, admin, "fields", { is_public: true });
  const file = join(tempDir(), "payload");
  writeFileSync(file, "rendered fields\n");
  nar = Buffer.from(Bun.spawnSync(["nix-store", "--dump", file]).stdout);
  narHash = new Bun.CryptoHasher("sha256").update(nar).digest("hex");
});

afterAll(async () => {
  await server?.stop();
});

const api = (method: string, path: string, body: unknown, token: string | null = admin): Promise<Response> =>
  fetch(`${server.url}${path}`, {
    method, headers: token ? { authorization: `Bearer ${token}` } : {}, body: body === undefined ? undefined : JSON.stringify(body),
  });

async function expectError(res: Response, status: number, error: string): Promise<void> {
  expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([status, error]);
}

describe("store_dir", () => {
  const bad = ["/nix/store\nPriority: 1", "relative", "/nix/store/", "/nix//store", "/nix/../etc", "/nix/st ore", "/nix/store\u2028x", ""];
  test("create refuses every store dir that is not one clean absolute path", async () => {
    for (const storeDir of bad) {
      const res = await api("POST", "/_api/v1/cache-config/sd-create", { store_dir: storeDir });
      expect([storeDir, res.status]).toEqual([storeDir, 400]);
    }
    expect((await api("GET", "/_api/v1/cache-config/sd-create", undefined)).status).toBe(404);
  });
  test("configure refuses them too, and the cache's nix-cache-info is unchanged", async () => {
    const before = await (await fetch(`${server.url}/fields/nix-cache-info`)).text();
    for (const storeDir of bad) {
      await expectError(await api("PATCH", "/_api/v1/cache-config/fields", { store_dir: storeDir }), 400, "RequestError");
    }
    expect(await (await fetch(`${server.url}/fields/nix-cache-info`)).text()).toBe(before);
    expect(before.split("\n").filter(Boolean)).toHaveLength(3);
  });
  test("a clean store dir is taken", async () => {
    expect((await api("POST", "/_api/v1/cache-config/sd-ok", { store_dir: "/opt/nix-store_2" })).status).toBe(200);
    expect(await (await fetch(`${server.url}/sd-ok/nix-cache-info`, { headers: { authorization: `Bearer ${admin}` } })).text())
      .toContain("StoreDir: /opt/nix-store_2\n");
  });
  test("upstream_cache_key_names must be key names", async () => {
    await expectError(await api("PATCH", "/_api/v1/cache-config/fields", { upstream_cache_key_names: ["a b"] }), 400, "RequestError");
    await expectError(await api("PATCH", "/_api/v1/cache-config/fields", { upstream_cache_key_names: ["x\ny"] }), 400, "RequestError");
  });
});

/** JSON with every non-ASCII character escaped, as a header value must be. */
const asciiJson = (v: unknown): string =>
  JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

describe("upload metadata", () => {
  const upload = (overrides: Record<string, unknown>): Promise<Response> =>
    fetch(`${server.url}/_api/v1/upload-path`, {
      method: "PUT",
      headers: {
        authorization: `Bearer ${admin}`,
        "x-attic-nar-info": asciiJson({
          cache: "fields", store_path_hash: HASH, store_path: PATH, references: [], system: null, deriver: null,
          sigs: [], ca: null, nar_hash: `sha256:${narHash}`, nar_size: nar.length, ...overrides,
        }),
      },
      body: nar,
    });
  test("a ca that is not a content address is refused", async () => {
    for (const ca of ["banana", "fixed:sha256", "text:md5:abc", "fixed:r:sha256:abc def", "fixed:r:sha256:abc\u2028CA: x"]) {
      await expectError(await upload({ ca }), 400, "InvalidNarInfo");
    }
  });
  test("a system with line separators of any kind is refused", async () => {
    for (const system of ["x86_64-linux\u2028Sig: k:AAAA", "x86_64-linux\u0085x", "x86_64-linux\u2029", "two words"]) {
      await expectError(await upload({ system }), 400, "InvalidNarInfo");
    }
    expect((await fetch(`${server.url}/fields/${HASH}.narinfo`)).status).toBe(404);
  });
  test("well-formed values are taken and rendered as given", async () => {
    const ca = "fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
    expect((await upload({ ca, system: "x86_64-linux" })).status).toBe(200);
    const text = await (await fetch(`${server.url}/fields/${HASH}.narinfo`)).text();
    expect(text).toContain(`CA: ${ca}\n`);
    expect(text).toContain("System: x86_64-linux\n");
  });
});

describe("pins", () => {
  test("who pinned a path is shown only to callers who may configure the cache", async () => {
    expect((await api("PUT", "/_api/v1/pins/fields/release", { store_path: PATH })).status).toBe(200);
    const anonymous = (await (await api("GET", "/_api/v1/pins/fields", undefined, null)).json()) as { pins: Record<string, unknown>[] };
    expect(anonymous.pins).toHaveLength(1);
    expect(anonymous.pins[0]).not.toHaveProperty("created_by");
    const reader = mintToken(server.dataDir, "--pull", "fields");
    const pulled = (await (await api("GET", "/_api/v1/pins/fields", undefined, reader)).json()) as { pins: Record<string, unknown>[] };
    expect(pulled.pins[0]).not.toHaveProperty("created_by");
    const configurer = (await (await api("GET", "/_api/v1/pins/fields", undefined)).json()) as { pins: Record<string, unknown>[] };
    expect(configurer.pins[0]!.created_by).toBe("test");
  });
});
