/**
 * Acceptance 3 and 4: bad input gets a clear JSON error and changes nothing; a tenant cannot read,
 * push to, configure or even detect another tenant's private cache.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireNix, tempDir } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { expiredToken, forgedToken } from "../helpers/tokens.ts";

requireNix();

let server: TestServer;
let admin: string;
let nar: Buffer;
let narHashHex: string;
const STORE_HASH = "0c0bp3fg7cgn7y0k8ixhrijhlzxqv4z7";
const STORE_PATH = `/nix/store/${STORE_HASH}-garret-bad-input`;

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*",
    "--configure-cache", "*", "--destroy-cache", "*", "--configure-cache-retention", "*");
  await createCache(server.url, admin, "bad-input");
  await createCache(server.url, admin, "open", { is_public: true });
  const file = join(tempDir(), "payload");
  writeFileSync(file, "some file content for a NAR\n".repeat(50));
  nar = Buffer.from(Bun.spawnSync(["nix-store", "--dump", file]).stdout);
  narHashHex = new Bun.CryptoHasher("sha256").update(nar).digest("hex");
});

afterAll(async () => {
  await server?.stop();
});

function info(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cache: "bad-input", store_path_hash: STORE_HASH, store_path: STORE_PATH, references: [],
    system: null, deriver: null, sigs: [], ca: null, nar_hash: `sha256:${narHashHex}`, nar_size: nar.length,
    ...overrides,
  };
}

async function upload(meta: Record<string, unknown>, body: Uint8Array, token: string | null = admin): Promise<Response> {
  return fetch(`${server.url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      "x-attic-nar-info": JSON.stringify(meta),
      "content-type": "application/x-nix-nar",
    },
    body,
  });
}

function storedFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]);
  return walk(join(server.dataDir, "storage"));
}

async function missing(cache: string, token = admin): Promise<string[]> {
  const res = await fetch(`${server.url}/_api/v1/get-missing-paths`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ cache, store_path_hashes: [STORE_HASH] }),
  });
  return ((await res.json()) as { missing_paths: string[] }).missing_paths;
}

async function expectRejected(res: Response, status: number, error: string): Promise<void> {
  const body = (await res.json()) as { code: number; error: string; message: string };
  expect({ status: res.status, error: body.error }).toEqual({ status, error });
  expect(body.code).toBe(status);
  expect(body.message.length).toBeGreaterThan(5);
  expect(storedFiles()).toEqual([]);
  expect(await missing("bad-input")).toEqual([STORE_HASH]);
}


describe("bad uploads are refused and leave nothing behind", () => {
  test("wrong nar_hash", async () => {
    await expectRejected(await upload(info({ nar_hash: `sha256:${"0".repeat(64)}` }), nar), 400, "HashMismatch");
  });
  test("wrong nar_size", async () => {
    await expectRejected(await upload(info({ nar_size: nar.length + 8 }), nar), 400, "SizeMismatch");
    await expectRejected(await upload(info({ nar_size: nar.length - 8 }), nar), 400, "SizeMismatch");
  });
  test("truncated body", async () => {
    await expectRejected(await upload(info(), nar.subarray(0, nar.length - 100)), 400, "SizeMismatch");
  });
  test("a body that is not a NAR", async () => {
    const junk = Buffer.alloc(nar.length, 1);
    const hash = new Bun.CryptoHasher("sha256").update(junk).digest("hex");
    await expectRejected(await upload(info({ nar_hash: `sha256:${hash}` }), junk), 400, "InvalidNar");
  });
  test("invalid store path", async () => {
    await expectRejected(await upload(info({ store_path: "/nix/store/not-a-hash" }), nar), 400, "InvalidStorePath");
    await expectRejected(await upload(info({ store_path: `/tmp/${STORE_HASH}-x` }), nar), 400, "InvalidStorePath");
    await expectRejected(await upload(info({ store_path: `${STORE_PATH}/../../etc` }), nar), 400, "InvalidStorePath");
    await expectRejected(await upload(info({ references: ["/nix/store/bad"] }), nar), 400, "InvalidStorePath");
  });
  test("store path hash not matching the store path", async () => {
    await expectRejected(await upload(info({ store_path_hash: "1c0bp3fg7cgn7y0k8ixhrijhlzxqv4z7" }), nar), 400, "InvalidStorePath");
  });
  test("metadata that would forge narinfo lines", async () => {
    await expectRejected(await upload(info({ system: "x86_64-linux\nSig: evil:AAAA" }), nar), 400, "InvalidNarInfo");
    await expectRejected(await upload(info({ ca: "fixed:r:sha256:x\rURL: nar/x" }), nar), 400, "InvalidNarInfo");
    await expectRejected(await upload(info({ sigs: ["k:abc\nURL: x"] }), nar), 400, "InvalidNarInfo");
  });
  test("invalid hash", async () => {
    await expectRejected(await upload(info({ nar_hash: "sha256:xyz" }), nar), 400, "InvalidNarInfo");
    await expectRejected(await upload(info({ nar_hash: "md5:abcdef" }), nar), 400, "InvalidNarInfo");
  });
  test("invalid cache name", async () => {
    await expectRejected(await upload(info({ cache: "../etc" }), nar), 400, "InvalidCacheName");
    const res = await fetch(`${server.url}/_api/v1/cache-config/bad%20name`, {
      method: "POST", headers: { authorization: `Bearer ${admin}` }, body: "{}",
    });
    await expectRejected(res, 400, "InvalidCacheName");
  });
  test("unknown cache", async () => {
    await expectRejected(await upload(info({ cache: "no-such-cache" }), nar), 404, "NoSuchCache");
  });
  test("missing token: private cache looks absent, public cache asks for a token", async () => {
    await expectRejected(await upload(info(), nar, null), 404, "NoSuchCache");
    await expectRejected(await upload(info({ cache: "open" }), nar, null), 401, "Unauthorized");
  });
  test("forged token", async () => {
    await expectRejected(await upload(info(), nar, await forgedToken()), 401, "Unauthorized");
  });
  test("expired token", async () => {
    const res = await upload(info(), nar, await expiredToken(server.dataDir));
    const body = (await res.clone().json()) as { message: string };
    expect(body.message).toContain("expired");
    await expectRejected(res, 401, "Unauthorized");
  });
  test("garbage token", async () => {
    await expectRejected(await upload(info(), nar, "not.a.jwt"), 401, "Unauthorized");
  });
  test("token without push on that cache", async () => {
    const reader = mintToken(server.dataDir, "--pull", "bad-input");
    await expectRejected(await upload(info(), nar, reader), 403, "Forbidden");
  });
  test("after all that, a correct upload works", async () => {
    const res = await upload(info(), nar);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ kind: "Uploaded" });
    expect(await missing("bad-input")).toEqual([]);
  });
  test("the preamble form works too", async () => {
    const meta = Buffer.from(JSON.stringify(info({ cache: "open" })));
    const res = await fetch(`${server.url}/_api/v1/upload-path`, {
      method: "PUT",
      headers: { authorization: `Bearer ${admin}`, "x-attic-nar-info-preamble-size": String(meta.length) },
      body: Buffer.concat([meta, nar]),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ kind: "Deduplicated", frac_deduplicated: 1 });
    expect(await missing("open")).toEqual([]);
  });
});

describe("tenant isolation", () => {
  let tenant: string;
  let hidden: Record<string, { status: number; body: string }>;

  const probes = (cache: string): Record<string, () => Promise<Response>> => {
    const h = { authorization: `Bearer ${tenant}`, "content-type": "application/json" };
    return {
      config: () => fetch(`${server.url}/_api/v1/cache-config/${cache}`, { headers: h }),
      cacheInfo: () => fetch(`${server.url}/${cache}/nix-cache-info`, { headers: h }),
      narinfo: () => fetch(`${server.url}/${cache}/${STORE_HASH}.narinfo`, { headers: h }),
      atticInfo: () => fetch(`${server.url}/${cache}/attic-cache-info`, { headers: h }),
      missing: () => fetch(`${server.url}/_api/v1/get-missing-paths`, {
        method: "POST", headers: h, body: JSON.stringify({ cache, store_path_hashes: [STORE_HASH] }),
      }),
      push: () => upload(info({ cache }), nar, tenant),
      configure: () => fetch(`${server.url}/_api/v1/cache-config/${cache}`, {
        method: "PATCH", headers: h, body: JSON.stringify({ is_public: true }),
      }),
      destroy: () => fetch(`${server.url}/_api/v1/cache-config/${cache}`, { method: "DELETE", headers: h }),
    };
  };

  beforeAll(async () => {
    await createCache(server.url, admin, "b1");
    await upload(info({ cache: "b1" }), nar);
    tenant = mintToken(server.dataDir, "--pull", "a-*", "--push", "a-*", "--configure-cache", "a-*",
      "--destroy-cache", "a-*", "--create-cache", "a-*");
    hidden = {};
    for (const [name, probe] of Object.entries(probes("b2"))) {
      const res = await probe();
      hidden[name] = { status: res.status, body: await res.text() };
    }
  });

  test("every probe of b1 answers exactly as for a cache that does not exist", async () => {
    for (const [name, probe] of Object.entries(probes("b1"))) {
      const res = await probe();
      expect({ name, status: res.status, body: await res.text() }).toEqual({ name, ...hidden[name]! });
    }
    expect(hidden.config!.status).toBe(404);
    expect(JSON.parse(hidden.config!.body).error).toBe("NoSuchCache");
  });

  test("b1 is untouched: still private and still holds its path", async () => {
    const res = await fetch(`${server.url}/_api/v1/cache-config/b1`, { headers: { authorization: `Bearer ${admin}` } });
    expect(((await res.json()) as { is_public: boolean }).is_public).toBe(false);
    expect(await missing("b1")).toEqual([]);
  });

  test("the tenant's own caches work", async () => {
    const res = await fetch(`${server.url}/_api/v1/cache-config/a-mine`, {
      method: "POST", headers: { authorization: `Bearer ${tenant}` }, body: JSON.stringify({ keypair: "Generate" }),
    });
    expect(res.status).toBe(200);
    expect((await upload(info({ cache: "a-mine" }), nar, tenant)).status).toBe(200);
  });
});
