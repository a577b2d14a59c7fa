/**
 * garret push: parallel uploads in reference order, retries, failures that do not stop the rest,
 * output for terminals, pipes and --json, --stdin, compression, and the fast path when everything
 * is cached already (issue 6, acceptance 1, 6 and the second half of 7).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { narOf, NIX_OPTS, requireNix, run, runOk, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { narinfoOf, storeHashOf } from "../helpers/api.ts";
import {
  deleteWide, loginClient, orderViolations, runAsync, runAsyncOk, startProxy, uploadCount, wideClosure, type Client,
} from "./helpers.ts";

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

const newCache = async (prefix: string): Promise<string> => {
  const name = `${prefix}-${uniqueTag()}`;
  await createCache(server.url, client.token, name);
  return name;
};

const pushJson = async (cache: string, ...args: string[]) => {
  const r = await runAsyncOk(garretCmd("push", `local:${cache}`, "--json", ...args), { env: client.env });
  return { ...r, summary: JSON.parse(r.stdout) };
};

describe("parallel push", () => {
  test("-j 8 pushes a wide closure completely, every path after its references", async () => {
    const cache = await newCache("par");
    const { top, closure } = wideClosure(uniqueTag(), 40);
    expect(closure.length).toBe(44);
    const { summary } = await pushJson(cache, "-j", "8", top);
    expect(summary).toMatchObject({ closure: 44, alreadyCached: 0, uploaded: 44, failed: 0, upstream: 0 });
    expect(orderViolations(server.dataDir, cache)).toEqual([]);
    for (const p of [top, ...closure.slice(0, 5)]) {
      expect((await narinfoOf(server.url, cache, p, client.token)).StorePath).toBe(p);
    }
  });

  test("-j 1 gives the same result", async () => {
    const cache = await newCache("seq");
    const { top } = wideClosure(uniqueTag(), 10);
    const { summary } = await pushJson(cache, "-j", "1", top);
    expect(summary).toMatchObject({ closure: 14, uploaded: 14, failed: 0 });
    expect(orderViolations(server.dataDir, cache)).toEqual([]);
  });

  test("uploads really overlap with -j 8 (the server sees several at once)", async () => {
    const cache = await newCache("overlap");
    const { top } = wideClosure(uniqueTag(), 30, 200000);
    let inFlight = 0;
    let peak = 0;
    // A pass-through proxy that counts upload requests in flight.
    const counting = Bun.serve({
      port: 0, hostname: "127.0.0.1", idleTimeout: 255,
      async fetch(req) {
        const url = new URL(req.url);
        const isUpload = req.method === "PUT" && url.pathname === "/_api/v1/upload-path";
        if (isUpload) peak = Math.max(peak, ++inFlight);
        try {
          const headers = new Headers(req.headers);
          headers.delete("host");
          const res = await fetch(`${server.url}${url.pathname}`, { method: req.method, headers, body: req.body, duplex: "half" } as RequestInit);
          return new Response(await res.arrayBuffer(), { status: res.status, headers: res.headers });
        } finally {
          if (isUpload) inFlight--;
        }
      },
    });
    try {
      await runAsyncOk(garretCmd("login", "counted", `http://127.0.0.1:${counting.port}`, client.token), { env: client.env });
      const r = await runAsyncOk(garretCmd("push", `counted:${cache}`, "-j", "8", "--json", top), { env: client.env });
      expect(JSON.parse(r.stdout)).toMatchObject({ uploaded: 34, failed: 0 });
      expect(peak).toBeGreaterThanOrEqual(4);
    } finally {
      counting.stop(true);
    }
  });

  test("a closure already in the cache is not uploaded again", async () => {
    const cache = await newCache("again");
    const { top } = wideClosure(uniqueTag(), 5);
    await pushJson(cache, top);
    const before = uploadCount(server);
    const { summary } = await pushJson(cache, "-j", "8", top);
    expect(summary).toMatchObject({ closure: 9, alreadyCached: 9, uploaded: 0 });
    expect(uploadCount(server)).toBe(before);
  });

  test("--stdin reads paths one per line (nix-store -qR output)", async () => {
    const cache = await newCache("stdin");
    const { top, closure } = wideClosure(uniqueTag(), 3);
    const r = await runAsyncOk(garretCmd("push", `local:${cache}`, "--stdin", "--json"), {
      env: client.env, input: `${closure.join("\n")}\n`,
    });
    expect(JSON.parse(r.stdout)).toMatchObject({ closure: 7, uploaded: 7 });
    expect((await narinfoOf(server.url, cache, top, client.token)).StorePath).toBe(top);
  });

  test("--compression zstd sends a compressed body the server verifies", async () => {
    const cache = await newCache("zstd");
    const { top } = wideClosure(uniqueTag(), 2, 100000);
    const { summary } = await pushJson(cache, "--compression", "zstd", top);
    expect(summary).toMatchObject({ uploaded: 6, failed: 0 });
    const info = await narinfoOf(server.url, cache, top, client.token);
    const res = await fetch(`${server.url}/${cache}/${info.URL}`, { headers: { authorization: `Bearer ${client.token}` } });
    expect(res.status).toBe(200);
    const nar = Buffer.from(await res.arrayBuffer());
    const plain = info.Compression === "zstd" ? Buffer.from(Bun.zstdDecompressSync(nar)) : nar;
    expect(plain.equals(narOf(top))).toBe(true);
  });
});

describe("retries and failures", () => {
  test("5xx answers are retried with backoff and the push succeeds", async () => {
    const cache = await newCache("retry");
    const { top } = wideClosure(uniqueTag(), 6);
    const proxy = startProxy(server.url, (_hash, attempt) => (attempt <= 2 ? 503 : null));
    try {
      await runAsyncOk(garretCmd("login", "flaky", proxy.url, client.token), { env: client.env });
      const r = await runAsync(garretCmd("push", `flaky:${cache}`, "--json", "-j", "4", top), { env: client.env });
      expect(r.code).toBe(0);
      const summary = JSON.parse(r.stdout);
      expect(summary).toMatchObject({ closure: 10, uploaded: 10, failed: 0, retries: 20 });
      expect(r.stderr).toContain("the proxy answers 503; retry 1");
      expect([...proxy.attempts.values()].every((n) => n === 3)).toBe(true);
    } finally {
      proxy.stop();
    }
  });

  test("a path that keeps failing is reported, exit code 1, the rest still uploads", async () => {
    const cache = await newCache("fail");
    const { top, closure } = wideClosure(uniqueTag(), 6);
    const victim = closure.find((p) => p.includes("garret-leaf-") && p.endsWith("-3"))!;
    const proxy = startProxy(server.url, (hash) => (hash === storeHashOf(victim) ? 500 : null));
    try {
      await runAsyncOk(garretCmd("login", "broken", proxy.url, client.token), { env: client.env });
      const r = await runAsync(garretCmd("push", `broken:${cache}`, "--json", "--retries", "2", top), { env: client.env });
      expect(r.code).toBe(1);
      const summary = JSON.parse(r.stdout);
      // The victim fails after 1 + 2 attempts; top depends on it and is skipped; the other 8 upload.
      expect(summary).toMatchObject({ closure: 10, uploaded: 8, failed: 2 });
      expect(proxy.attempts.get(storeHashOf(victim))).toBe(3);
      expect(summary.failures.map((f: { path: string }) => f.path).sort()).toEqual([top, victim].sort());
      expect(r.stderr).toContain(`✗ ${victim}: the proxy answers 500`);
      expect(r.stderr.trim().split("\n").pop()).toBe("error: 2 path(s) failed to push");
      // Nothing that references the failed path reached the cache.
      expect((await fetch(`${server.url}/${cache}/${storeHashOf(top)}.narinfo`, { headers: { authorization: `Bearer ${client.token}` } })).status).toBe(404);
    } finally {
      proxy.stop();
    }
  });

  test("4xx answers are not retried", async () => {
    const cache = await newCache("noretry");
    const { top } = wideClosure(uniqueTag(), 1);
    const proxy = startProxy(server.url, () => 400);
    try {
      await runAsyncOk(garretCmd("login", "refuses", proxy.url, client.token), { env: client.env });
      const r = await runAsync(garretCmd("push", `refuses:${cache}`, "--json", top), { env: client.env });
      expect(r.code).toBe(1);
      // The two paths without dependencies (the leaf and chain0) are tried once each; the rest
      // depend on them and are never sent.
      expect([...proxy.attempts.values()]).toEqual([1, 1]);
      expect(JSON.parse(r.stdout)).toMatchObject({ closure: 5, uploaded: 0, failed: 5, retries: 0 });
    } finally {
      proxy.stop();
    }
  });

  test("user mistakes are one line, no stack", async () => {
    const r = await runAsync(garretCmd("push", "local:x", "/tmp/not-a-store-path"), { env: client.env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toStartWith("error: ");
    const j = await runAsync(garretCmd("push", "local:x", "-j", "0", "/nix/store/x"), { env: client.env });
    expect(j.code).toBe(2);
    expect(j.stderr.trim()).toBe("error: --jobs must be an integer from 1 to 256");
    const u = await runAsync(garretCmd("push", "nosuch:x", "/nix/store/x"), { env: client.env });
    expect(u.stderr).toStartWith('error: unknown server alias "nosuch" (known: ');
    expect(u.stderr).toMatch(/^error: unknown server alias "nosuch" \(known: [^)]*\blocal\b[^)]*\); to add it: garret login nosuch URL TOKEN\n$/);
  });
});

describe("NAR and closure sources", () => {
  test("nix-store --dump and nix path-info (the fallbacks) give the same result", async () => {
    const cache = await newCache("fallback");
    const { top } = wideClosure(uniqueTag(), 4, 50000);
    const r = await runAsyncOk(garretCmd("push", `local:${cache}`, "--json", top), {
      env: { ...client.env, GARRET_NAR_SOURCE: "nix-store", GARRET_NIX_DB: "off" },
    });
    expect(JSON.parse(r.stdout)).toMatchObject({ closure: 8, uploaded: 8, failed: 0 });
  });

  test("a NAR the server rejects as mismatched is sent again from nix-store --dump", async () => {
    const cache = await newCache("mismatch");
    const { top } = wideClosure(uniqueTag(), 1);
    // A proxy that answers HashMismatch to the first upload of each path.
    const seen: Record<string, boolean> = {};
    const mismatch = Bun.serve({
      port: 0, hostname: "127.0.0.1",
      async fetch(req) {
        const url = new URL(req.url);
        const headers = new Headers(req.headers);
        headers.delete("host");
        const seenBefore = (req.headers.get("x-attic-nar-info") ?? "") in seen;
        if (req.method === "PUT" && url.pathname === "/_api/v1/upload-path" && !seenBefore) {
          seen[req.headers.get("x-attic-nar-info")!] = true;
          await req.arrayBuffer();
          return Response.json({ code: 400, error: "HashMismatch", message: "pretend the NAR differs" }, { status: 400 });
        }
        return fetch(`${server.url}${url.pathname}`, { method: req.method, headers, body: req.body, duplex: "half" } as RequestInit);
      },
    });
    try {
      await runAsyncOk(garretCmd("login", "mismatch2", `http://127.0.0.1:${mismatch.port}`, client.token), { env: client.env });
      const r = await runAsync(garretCmd("push", `mismatch2:${cache}`, "--json", top), { env: client.env });
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ closure: 5, failed: 0, retries: 0 });
      expect(Object.keys(seen)).toHaveLength(5);
    } finally {
      mismatch.stop(true);
    }
  });
});

describe("output", () => {
  test("piped output is plain lines, no escape codes", async () => {
    const cache = await newCache("plain");
    const { top } = wideClosure(uniqueTag(), 3);
    const r = await runAsyncOk(garretCmd("push", `local:${cache}`, top), { env: client.env });
    expect(r.stdout + r.stderr).not.toContain("\x1b");
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe(`Pushing 7 paths to ${cache} (0 already cached)`);
    expect(lines.filter((l) => l.startsWith("✓ /nix/store/"))).toHaveLength(7);
    expect(lines.at(-1)).toMatch(/^Done: 7 uploaded, 0 deduplicated, 0 already cached, 0 in upstream, 0 failed/);
  });

  test("--json prints one parsable summary", async () => {
    const cache = await newCache("json");
    const { top } = wideClosure(uniqueTag(), 2);
    const r = await runAsyncOk(garretCmd("push", `local:${cache}`, "--json", top), { env: client.env });
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ closure: 6, upstream: 0, alreadyCached: 0, uploaded: 6, deduplicated: 0, failed: 0, retries: 0, failures: [] });
    expect(s.bytes).toBeGreaterThan(0);
    expect(typeof s.seconds).toBe("number");
  });

  test("on a terminal it draws progress bars", async () => {
    const cache = await newCache("tty");
    const { top } = wideClosure(uniqueTag(), 20, 300000);
    const cmd = [...garretCmd("push", `local:${cache}`, "--limit-rate", "8M", top)].map((a) => `'${a}'`).join(" ");
    const r = await runAsyncOk(["script", "-q", "-e", "-c", cmd, "/dev/null"], { env: { ...client.env, TERM: "xterm" } });
    expect(r.stdout).toContain("\x1b[");
    expect(r.stdout).toContain(`Pushing 24 paths to ${cache} (0 already cached)`);
    expect(r.stdout).toMatch(/\d+\/24 paths \| [\d.]+ (KiB|MiB)\/[\d.]+ MiB \| [\d.]+ (B|KiB|MiB)\/s/);
    expect(r.stdout).toContain("Done: 24 uploaded");
  });
});

describe("fast when nothing is missing", () => {
  // How long it takes is the push bench's (scripts/bench/push.ts); here, the work it asks of the server.
  test("a second push of a 1000-path closure asks the server two batched questions and sends nothing", async () => {
    const cache = await newCache("k1000");
    const { top, closure } = wideClosure(uniqueTag(), 997, 100);
    expect(closure.length).toBe(1001);
    const first = await pushJson(cache, "-j", "16", top);
    expect(first.summary).toMatchObject({ closure: 1001, uploaded: 1001, failed: 0 });
    const logged = server.log().length;
    const second = await pushJson(cache, top);
    expect(second.summary).toMatchObject({ closure: 1001, alreadyCached: 1001, uploaded: 0 });
    console.log(`1001-path closure: first push ${(first.ms / 1000).toFixed(2)} s, cached push ${(second.ms / 1000).toFixed(2)} s`);
    const requests = server.log().slice(logged).split("\n").filter((l) => / (GET|HEAD|POST|PUT|PATCH|DELETE) \//.test(l));
    // 1001 hashes in batches of at most 1000, plus what the client asks about the cache itself.
    expect(requests.filter((l) => l.includes("/_api/v1/get-missing-paths")).length).toBe(2);
    expect(requests.filter((l) => l.includes("upload-path") || l.includes(".narinfo") || / PUT /.test(l))).toEqual([]);
    expect(requests.length).toBeLessThanOrEqual(5);
  });
});

describe("stock Nix reads what was pushed in parallel", () => {
  test("substitutes a -j 8 push back", async () => {
    const cache = await newCache("subst");
    const { top, closure } = wideClosure(uniqueTag(), 8);
    const key = JSON.parse((await runAsyncOk(garretCmd("cache", "info", `local:${cache}`, "--json"), { env: client.env })).stdout).public_key;
    await pushJson(cache, "-j", "8", top);
    const nars = new Map(closure.map((p) => [p, narOf(p)]));
    deleteWide(top, closure);
    const netrc = join(client.env.XDG_CONFIG_HOME!, "netrc");
    await Bun.write(netrc, `machine 127.0.0.1 password ${client.token}\n`);
    runOk(["nix-store", ...NIX_OPTS, "--option", "substituters", `${server.url}/${cache}`,
      "--option", "trusted-public-keys", key, "--option", "netrc-file", netrc, "-r", top]);
    for (const [p, nar] of nars) expect(narOf(p).equals(nar)).toBe(true);
    expect(run(["nix-store", "--check-validity", top]).code).toBe(0);
  });
});
