/**
 * The dashboard's JSON endpoints (issue 14) over HTTP, against a real server and paths built by
 * real Nix: figures after pushes, search, cursor pages, one path with references and referrers,
 * the admin-only server page, and (acceptance 2) a token for one cache getting, from every new
 * endpoint, for another's private cache, exactly the answer for a missing cache.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildClosure, requireNix, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { pathInfo, storeHashOf, uploadPath } from "../helpers/api.ts";

requireNix();

let server: TestServer;
let admin: string;
let tokenA: string;
let top: string;
let dep: string;

const get = (path: string, token?: string): Promise<Response> =>
  fetch(`${server.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--delete", "*", "--create-cache", "*",
    "--configure-cache", "*", "--configure-cache-retention", "*", "--destroy-cache", "*");
  tokenA = mintToken(server.dataDir, "--pull", "a-*", "--push", "a-*");
  await createCache(server.url, admin, "a-one");
  await createCache(server.url, admin, "b-private");
  await createCache(server.url, admin, "c-public", { is_public: true });
  ({ top, dep } = buildClosure(`dash-${uniqueTag()}`));
  for (const cache of ["a-one", "b-private"]) {
    for (const p of [dep, top]) {
      const res = await uploadPath(server.url, admin, cache, p);
      expect(res.status).toBe(200);
    }
  }
});

afterAll(async () => {
  await server?.stop();
});

describe("figures", () => {
  test("the caches listing shows what the caller may see, with paths and bytes", async () => {
    const all = await (await get("/_api/v1/caches", admin)).json() as { caches: { name: string; paths: number; nar_bytes: number }[] };
    expect(all.caches.map((c) => c.name).sort()).toEqual(["a-one", "b-private", "c-public"]);
    const a = all.caches.find((c) => c.name === "a-one")!;
    expect(a.paths).toBe(2);
    expect(a.nar_bytes).toBe(pathInfo(top).narSize + pathInfo(dep).narSize);
    const mine = await (await get("/_api/v1/caches", tokenA)).json() as { caches: { name: string }[] };
    expect(mine.caches.map((c) => c.name).sort()).toEqual(["a-one", "c-public"]);
    const anon = await (await get("/_api/v1/caches")).json() as { caches: { name: string }[] };
    expect(anon.caches.map((c) => c.name)).toEqual(["c-public"]);
  });

  test("stats: paths, logical and stored bytes, dedup ratio, last push", async () => {
    const s = await (await get("/_api/v1/caches/a-one/stats", tokenA)).json() as Record<string, unknown>;
    expect(s.paths).toBe(2);
    expect(s.nar_bytes).toBe(pathInfo(top).narSize + pathInfo(dep).narSize);
    expect(s.stored_bytes as number).toBeGreaterThan(0);
    expect(s.dedup_ratio).toBeCloseTo((s.nar_bytes as number) / (s.stored_bytes as number));
    expect(typeof s.last_push_at).toBe("number");
    expect(s.public_key as string).toStartWith("a-one-1:");
    expect((s.history as unknown[]).length).toBe(1);
  });

  test("paths: newest first, search by name and by hash, cursor pages", async () => {
    const page = await (await get("/_api/v1/caches/a-one/paths", tokenA)).json() as { paths: { store_path: string }[]; next_cursor: string | null };
    expect(page.paths.map((p) => p.store_path)).toEqual([top, dep]);
    expect(page.next_cursor).toBeNull();
    const first = await (await get("/_api/v1/caches/a-one/paths?limit=1", tokenA)).json() as { paths: { store_path: string }[]; next_cursor: string };
    expect(first.paths.map((p) => p.store_path)).toEqual([top]);
    const second = await (await get(`/_api/v1/caches/a-one/paths?limit=1&cursor=${first.next_cursor}`, tokenA)).json() as { paths: { store_path: string }[]; next_cursor: string | null };
    expect(second.paths.map((p) => p.store_path)).toEqual([dep]);
    expect(second.next_cursor).toBeNull();
    const name = dep.split("/").pop()!.slice(33);
    const byName = await (await get(`/_api/v1/caches/a-one/paths?q=${encodeURIComponent(name)}`, tokenA)).json() as { paths: { store_path: string }[] };
    expect(byName.paths.map((p) => p.store_path)).toEqual([dep]);
    const byHash = await (await get(`/_api/v1/caches/a-one/paths?q=${storeHashOf(top).slice(0, 10)}`, tokenA)).json() as { paths: { store_path: string }[] };
    expect(byHash.paths.map((p) => p.store_path)).toEqual([top]);
    const bad = await get("/_api/v1/caches/a-one/paths?q=%25%27", tokenA);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toBe("RequestError");
  });

  test("one path: references, referrers, closure size", async () => {
    const p = await (await get(`/_api/v1/caches/a-one/paths/${storeHashOf(top)}`, tokenA)).json() as Record<string, unknown>;
    expect(p.store_path).toBe(top);
    expect(p.references).toContain(dep.split("/").pop());
    expect(p.closure_size).toBe(pathInfo(top).narSize + pathInfo(dep).narSize);
    const d = await (await get(`/_api/v1/caches/a-one/paths/${storeHashOf(dep)}`, tokenA)).json() as Record<string, unknown>;
    expect(d.referrers).toEqual([top.split("/").pop()]);
  });

  test("server stats: admin only", async () => {
    const s = await get("/_api/v1/server/stats", admin);
    expect(s.status).toBe(200);
    const body = await s.json() as Record<string, unknown>;
    expect(body.paths).toBe(4);
    expect(body.database).toBe(process.env.GARRET_TEST_DATABASE_URL ? "postgresql" : "sqlite");
    expect(Array.isArray(body.gc_runs)).toBe(true);
    expect((await get("/_api/v1/server/stats", tokenA)).status).toBe(403);
    expect((await get("/_api/v1/server/stats")).status).toBe(401);
  });
});

describe("a private cache answers exactly like a missing one", () => {
  const endpoints = (cache: string): string[] => [
    `/_api/v1/caches/${cache}/stats`,
    `/_api/v1/caches/${cache}/paths`,
    `/_api/v1/caches/${cache}/paths?q=x&limit=5`,
    `/_api/v1/caches/${cache}/paths/${"0".repeat(32)}`,
  ];

  async function answer(path: string, token?: string): Promise<{ status: number; body: string; headers: [string, string][] }> {
    const res = await get(path, token);
    const headers = [...res.headers.entries()].filter(([k]) => k !== "date" && k !== "x-request-id").sort();
    return { status: res.status, body: await res.text(), headers };
  }

  test("for a token of another cache, and for anonymous callers", async () => {
    const hidden = [...endpoints("b-private"), `/_api/v1/caches/b-private/paths/${storeHashOf(top)}`];
    const missing = [...endpoints("b-missing"), `/_api/v1/caches/b-missing/paths/${storeHashOf(top)}`];
    for (const token of [tokenA, undefined]) {
      for (let i = 0; i < hidden.length; i++) {
        const h = await answer(hidden[i]!, token);
        const m = await answer(missing[i]!, token);
        expect(h.status).toBe(404);
        expect(h).toEqual(m);
      }
    }
    // The private cache is real and holds the path: its own token sees it.
    expect((await get(`/_api/v1/caches/b-private/paths/${storeHashOf(top)}`, admin)).status).toBe(200);
    // The listing leaves it out as it leaves out names that do not exist.
    const listed = await (await get("/_api/v1/caches", tokenA)).json() as { caches: { name: string }[] };
    expect(listed.caches.map((c) => c.name)).not.toContain("b-private");
  });
});

test("server stats list the collections the server ran", async () => {
  const gcServer = await startServer({ env: { GARRET_GC_INTERVAL: "1s" } });
  try {
    const root = mintToken(gcServer.dataDir, "--pull", "*", "--push", "*", "--delete", "*", "--create-cache", "*",
      "--configure-cache", "*", "--configure-cache-retention", "*", "--destroy-cache", "*");
    let runs: { result: string; at: number }[] = [];
    while (runs.length === 0) {
      await Bun.sleep(200);
      runs = ((await (await fetch(`${gcServer.url}/_api/v1/server/stats`, { headers: { authorization: `Bearer ${root}` } })).json()) as { gc_runs: typeof runs }).gc_runs;
    }
    expect(runs[0]!.result).toBe("ok");
    expect(typeof runs[0]!.at).toBe("number");
  } finally {
    await gcServer.stop();
  }
});
