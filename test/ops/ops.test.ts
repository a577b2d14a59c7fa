/**
 * Issue 16 acceptance 5 and 6, issue 17's request log: health and ready (503 once storage is
 * gone), /metrics parsed strictly with counters moving after a real push and a real pull, the
 * request log in both formats (id = X-Request-Id, client, sub, cache, status, bytes, duration,
 * why for 401/403), Cache-Control, and no token or key material in any log line.
 */
import { openDb } from "../helpers/db.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClosure, deleteFromStore, NIX_OPTS, requireNix, run, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheus, total } from "./prometheus.ts";

requireNix();

const METRICS_TOKEN = `metrics-${crypto.randomUUID()}`;
const servers: TestServer[] = [];

afterAll(async () => {
  for (const s of servers) await s.stop();
});

for (const format of ["text", "json"] as const) {
  describe(`operations, log format ${format}`, () => {
    const cache = `ops-${format}-${uniqueTag()}`;
    let server: TestServer;
    let root: string;
    let pusher: string;
    let env: Record<string, string>;
    let publicKey: string;
    let closure: { top: string; dep: string };
    const metricsAuth = format === "json" ? { authorization: `Bearer ${METRICS_TOKEN}` } : undefined;

    const metrics = async () => {
      const res = await fetch(`${server.url}/metrics`, { headers: metricsAuth });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
      return parsePrometheus(await res.text());
    };

    test("the server starts; health and ready answer", async () => {
      // text through the flag, json through the environment (with a metrics token)
      server = format === "text"
        ? await startServer({ args: ["--log-format", "text"] })
        : await startServer({ env: { GARRET_LOG_FORMAT: "json", GARRET_METRICS_TOKEN: METRICS_TOKEN } });
      servers.push(server);
      root = readFileSync(join(server.dataDir, "root-token"), "utf8").trim();
      pusher = mintToken(server.dataDir, "--pull", "ops-*", "--push", "ops-*");
      env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
      runOk(garretCmd("login", "local", server.url, root), { env });
      const health = await fetch(`${server.url}/_api/v1/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: "ok" });
      const ready = await fetch(`${server.url}/_api/v1/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: "ready" });
    });

    test(format === "json" ? "/metrics wants its token" : "/metrics is open without a token configured", async () => {
      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).toBe(format === "json" ? 401 : 200);
      if (format === "json") {
        const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } });
        expect(wrong.status).toBe(401);
      }
    });

    test("counters move after a real push and a real pull", async () => {
      const before = await metrics();
      runOk(garretCmd("cache", "create", `local:${cache}`), { env });
      publicKey = JSON.parse(runOk(garretCmd("cache", "info", `local:${cache}`, "--json"), { env })).public_key;
      closure = buildClosure(uniqueTag());
      const pushEnv = { XDG_CONFIG_HOME: tempDir("garret-client-") };
      runOk(garretCmd("login", "local", server.url, pusher), { env: pushEnv });
      const summary = JSON.parse(runOk(garretCmd("push", `local:${cache}`, closure.top, "--json"), { env: pushEnv }));
      expect(summary).toMatchObject({ uploaded: 2, failed: 0 });
      const afterPush = await metrics();
      const uploads = (m: typeof before) => total(m, "garret_http_requests_total", { route: "api/upload-path", status: "200" });
      expect(uploads(afterPush) - uploads(before)).toBe(2);
      expect(total(afterPush, "garret_uploads_total") - total(before, "garret_uploads_total")).toBe(2);
      expect(total(afterPush, "garret_upload_duration_seconds_count") - total(before, "garret_upload_duration_seconds_count")).toBe(2);
      expect(total(afterPush, "garret_http_received_bytes_total", { route: "api/upload-path" }))
        .toBeGreaterThan(total(before, "garret_http_received_bytes_total", { route: "api/upload-path" }));
      expect(total(afterPush, "garret_uploads_in_flight")).toBe(0);

      // pull: stock Nix substitutes the closure back
      const netrc = join(tempDir(), "netrc");
      writeFileSync(netrc, `machine 127.0.0.1 password ${pusher}\n`);
      deleteFromStore(closure.top, closure.dep);
      runOk(["nix-store", ...NIX_OPTS, "--option", "substituters", `${server.url}/${cache}`,
        "--option", "trusted-public-keys", publicKey, "--option", "netrc-file", netrc, "-r", closure.top]);
      const afterPull = await metrics();
      const narinfos = (m: typeof before) => total(m, "garret_http_requests_total", { route: "narinfo", status: "200" });
      expect(narinfos(afterPull) - narinfos(afterPush)).toBeGreaterThanOrEqual(2);
      expect(total(afterPull, "garret_narinfo_duration_seconds_count")).toBeGreaterThan(total(afterPush, "garret_narinfo_duration_seconds_count"));
      expect(total(afterPull, "garret_http_sent_bytes_total", { route: "nar" }))
        .toBeGreaterThan(total(afterPush, "garret_http_sent_bytes_total", { route: "nar" }));
      // families the issue names are all there
      for (const name of ["garret_dedup_saved_bytes_total", "garret_gc_runs_total", "garret_gc_freed_bytes_total", "garret_errors_total"]) {
        expect(afterPull.has(name)).toBe(true);
      }
      // route labels are classes: no cache name, no hash
      const routes = afterPull.get("garret_http_requests_total")!.samples.map((s) => s.labels.route!);
      for (const r of routes) expect(r).not.toContain(cache);
    });

    test("Cache-Control: NARs immutable, narinfo short, a private cache's answers private, errors alike", async () => {
      const hash = closure.top.slice(11, 43);
      const auth = { authorization: `Bearer ${pusher}` };
      const ni = await fetch(`${server.url}/${cache}/${hash}.narinfo`, { headers: auth });
      expect(ni.status).toBe(200);
      expect(ni.headers.get("cache-control")).toBe("private, max-age=60");
      const url = /^URL: (.+)$/m.exec(await ni.text())![1]!;
      const nar = await fetch(`${server.url}/${cache}/${url}`, { headers: auth });
      expect(nar.status).toBe(200);
      expect(nar.headers.get("cache-control")).toBe("private, max-age=31536000, immutable");
      await nar.arrayBuffer();
      const info = await fetch(`${server.url}/${cache}/nix-cache-info`, { headers: auth });
      expect(info.headers.get("cache-control")).toBe("private, max-age=60");
      // anonymous: the private cache answers exactly like a missing one
      const hidden = await fetch(`${server.url}/${cache}/${hash}.narinfo`);
      const missing = await fetch(`${server.url}/ops-none-${uniqueTag()}/${hash}.narinfo`);
      expect(hidden.status).toBe(404);
      expect(missing.status).toBe(404);
      const shape = (r: Response) => [...r.headers].filter(([k]) => k !== "date" && k !== "x-request-id");
      expect(shape(hidden)).toEqual(shape(missing));
      expect(await hidden.text()).toBe(await missing.text());
      expect(hidden.headers.get("cache-control")).toBe("no-store");
      // public: answers may be stored by shared caches
      runOk(garretCmd("cache", "configure", `local:${cache}`, "--public"), { env });
      const pub = await fetch(`${server.url}/${cache}/${hash}.narinfo`);
      expect(pub.headers.get("cache-control")).toBe("public, max-age=60");
      const pubNar = await fetch(`${server.url}/${cache}/${url}`);
      expect(pubNar.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      await pubNar.arrayBuffer();
      runOk(garretCmd("cache", "configure", `local:${cache}`, "--private"), { env });
    });

    test("bad tokens are refused and the log says why", async () => {
      const expired = mintToken(server.dataDir, "--pull", "ops-*", "--push", "ops-*", "--validity", "1s");
      const pullOnly = mintToken(server.dataDir, "--pull", "ops-*");
      await Bun.sleep(2100);
      const upload = (token: string) => fetch(`${server.url}/_api/v1/upload-path`, {
        method: "PUT", headers: { authorization: `Bearer ${token}`, "x-attic-nar-info": JSON.stringify({ cache }) }, body: "",
      });
      const r1 = await upload(expired);
      expect(r1.status).toBe(401);
      const r2 = await upload("garbage.token.here");
      expect(r2.status).toBe(401);
      const r3 = await upload(pullOnly);
      expect(r3.status).toBe(403);
      expect(((await r3.json()) as { message: string }).message).toBe(`Your token lacks push on ${cache}.`);
      // admin calls with the root token
      runOk(garretCmd("cache", "configure", `local:${cache}`, "--priority", "30"), { env });
      const ids = [r1, r2, r3].map((r) => r.headers.get("x-request-id")!);
      for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9._:-]+$/);
      await Bun.sleep(100); // the log is written once per event-loop turn
      const lines = requestLines(server.log(), format);
      const byId = (id: string) => lines.find((l) => l.id === id)!;
      expect(byId(ids[0]!).why).toContain("expired");
      expect(byId(ids[1]!).why).toContain("token rejected");
      expect(byId(ids[2]!)).toMatchObject({ status: 403, sub: "test", cache: null });
      expect(byId(ids[2]!).why).toBe(`Your token lacks push on ${cache}.`);
    });

    test("every request line has time, client, sub, cache, status, bytes and duration", () => {
      const lines = requestLines(server.log(), format);
      expect(lines.length).toBeGreaterThan(20);
      for (const l of lines) {
        expect(Number.isNaN(Date.parse(l.time))).toBe(false);
        expect(l.client).toBe("127.0.0.1");
        expect(l.id.length).toBeGreaterThan(0);
        expect(l.status).toBeGreaterThanOrEqual(200);
        expect(l.duration_ms).toBeGreaterThanOrEqual(0);
        expect(l.bytes_out).toBeGreaterThanOrEqual(0);
      }
      const narinfo = lines.find((l) => l.route === "narinfo" && l.status === 200 && l.sub === "test")!;
      expect(narinfo.cache).toBe(cache);
      const upload = lines.find((l) => l.route === "api/upload-path" && l.status === 200)!;
      expect(upload.sub).toBe("test");
      expect(upload.bytes_in).toBeGreaterThan(0);
      expect(lines.some((l) => l.sub === "root" && l.route === "api/cache-config")).toBe(true);
    });

    test("no token or key material in any log line", () => {
      const log = server.log();
      const db = openDb(server.dataDir);
      const keys = (db.query("SELECT signing_key FROM caches").all() as { signing_key: string }[]).map((r) => r.signing_key);
      db.close();
      expect(keys.length).toBeGreaterThan(0);
      const secret = readFileSync(join(server.dataDir, "token-secret"), "utf8").trim();
      const material = [root, pusher, secret, Buffer.from(secret, "base64").toString("hex"), METRICS_TOKEN,
        ...keys, ...keys.map((k) => k.slice(k.indexOf(":") + 1))];
      for (const m of material) {
        expect(m.length).toBeGreaterThan(16);
        expect(log).not.toContain(m);
        // nor a token's signature part alone
        if (m.split(".").length === 3) expect(log).not.toContain(m.split(".")[2]!);
      }
      if (format === "json") for (const line of log.trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
    });

    test("ready goes 503 once storage is unreachable; health stays up", async () => {
      rmSync(join(server.dataDir, "storage"), { recursive: true, force: true });
      const ready = await fetch(`${server.url}/_api/v1/ready`);
      expect(ready.status).toBe(503);
      const body = await ready.json() as { status: string; problems: string[] };
      expect(body.status).toBe("unavailable");
      expect(body.problems[0]).toStartWith("storage:");
      expect((await fetch(`${server.url}/_api/v1/health`)).status).toBe(200);
    });
  });
}

interface Line {
  time: string; id: string; client: string; method: string; path: string; route?: string; cache: string | null;
  sub: string | null; status: number; bytes_in: number; bytes_out: number; duration_ms: number; why: string | null;
}

/** The request lines of a server log, parsed from either format. */
function requestLines(log: string, format: "text" | "json"): Line[] {
  const out: Line[] = [];
  for (const raw of log.split("\n")) {
    if (format === "json") {
      if (!raw.startsWith("{")) continue;
      const j = JSON.parse(raw);
      if ("status" in j) out.push(j);
      continue;
    }
    const m = /^(\S+Z) (\S+) ([A-Z]+) (\S+) (\d{3}) ([\d.]+)ms cache=(\S+) sub=(\S+) in=(\d+) out=(\d+) id=(\S+)(?: jti=\S+)?(?: why=(".*"))?$/.exec(raw);
    if (!m) continue;
    const dash = (v: string) => (v === "-" ? null : v.startsWith('"') ? JSON.parse(v) : v);
    out.push({
      time: m[1]!, client: m[2]!, method: m[3]!, path: m[4]!, status: Number(m[5]), duration_ms: Number(m[6]),
      cache: dash(m[7]!), sub: dash(m[8]!), bytes_in: Number(m[9]), bytes_out: Number(m[10]), id: m[11]!,
      why: m[12] ? JSON.parse(m[12]) : null, route: routeOfPath(m[4]!),
    });
  }
  return out;
}

/** Text lines carry the path, not the route class; enough of the class for these checks. */
function routeOfPath(path: string): string {
  if (path.endsWith(".narinfo")) return "narinfo";
  const api = /^\/_api\/v1\/([a-z-]+)/.exec(path);
  return api ? `api/${api[1]}` : "other";
}
