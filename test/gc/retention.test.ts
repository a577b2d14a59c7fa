/**
 * Retention (issue 5, acceptance 1 and 2). Time is real: a 2-second retention period and sleeps;
 * the server flushes access times every 0.2 s (GARRET_ACCESS_FLUSH_INTERVAL) and periodic GC is
 * off, so each collection is one `garret gc` run. Times are whole seconds and an access is stamped
 * when flushed, so "older than 2 s" is only certain 3.2 s after the last access: sleeps are 3.4 s.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClosure, deleteClosure, narOf, requireNix, runOk, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { danglingChunks, narinfoOf, pathInfo, uploadPath } from "../helpers/api.ts";
import { count, GC_TEST_ENV, narinfoStatus, runGc } from "./helpers.ts";

requireNix();

let server: TestServer;
let token: string;
let netrc: string;
let clientEnv: Record<string, string>;
const keys: Record<string, string> = {};

beforeAll(async () => {
  server = await startServer({ env: GC_TEST_ENV });
  token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache-retention", "*", "--delete", "*");
  keys.short = await createCache(server.url, token, "short", { retention_period: { Period: 2 } });
  keys.forever = await createCache(server.url, token, "forever", { retention_period: { Period: 0 } });
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
  clientEnv = { XDG_CONFIG_HOME: tempDir("garret-client-") };
  runOk(garretCmd("login", "t", server.url, token), { env: clientEnv });
});

afterAll(async () => {
  await server?.stop();
});

async function push(cache: string, closure: { top: string; dep: string }): Promise<void> {
  for (const p of [closure.dep, closure.top]) expect((await uploadPath(server.url, token, cache, p)).status).toBe(200);
}

const status = (cache: string, path: string) => narinfoStatus(server.url, token, cache, path);
const narRows = (path: string) => count(server.dataDir, "SELECT COUNT(*) AS n FROM nars WHERE nar_hash = ?", pathInfo(path).narHash.slice(7));

describe("retention", () => {
  test("expiry is per cache, closure-aware, spares fetched and pinned closures and shared NARs", async () => {
    const shared = buildClosure(uniqueTag()); // in both caches
    const stale = buildClosure(uniqueTag()); // only in "short", never fetched
    const fetched = buildClosure(uniqueTag()); // only in "short", its top fetched later
    const pinned = buildClosure(uniqueTag()); // only in "short", pinned
    for (const c of [shared, stale, fetched, pinned]) await push("short", c);
    await push("forever", shared);
    runOk(garretCmd("pin", "t:short", "keep-me", pinned.top), { env: clientEnv });
    expect(runOk(garretCmd("pin", "list", "t:short"), { env: clientEnv })).toContain(`keep-me\t${pinned.top}`);

    // Nothing is old enough yet.
    expect(runGc(server.dataDir).objects).toBe(0);

    await Bun.sleep(3400);
    // Fetch only the top of `fetched` (narinfo and NAR); its dependency is never fetched.
    const info = await narinfoOf(server.url, "short", fetched.top, token);
    await (await fetch(`${server.url}/short/${info.URL}`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer();
    await Bun.sleep(500); // one access flush

    const report = runGc(server.dataDir);
    expect(report.objects).toBe(4); // shared and stale, in "short" only
    for (const p of [shared.top, shared.dep, stale.top, stale.dep]) expect(await status("short", p)).toBe(404);
    // Closure-aware: the fetched top keeps its unfetched dependency, the pin keeps its closure.
    for (const p of [fetched.top, fetched.dep, pinned.top, pinned.dep]) expect(await status("short", p)).toBe(200);
    // Keep-forever keeps everything, and the NAR it shares with "short" survives.
    for (const p of [shared.top, shared.dep]) expect(await status("forever", p)).toBe(200);
    expect(narRows(shared.dep)).toBe(1);
    expect(narRows(stale.dep)).toBe(0);
    expect(report.nars).toBe(2);
    expect(danglingChunks(server.dataDir)).toEqual([]);

    // Stock Nix substitutes the kept closures, dependencies included.
    for (const [cache, c] of [["short", fetched], ["short", pinned], ["forever", shared]] as const) {
      const nar = narOf(c.dep);
      deleteClosure(c.top);
      const r = substitute(`${server.url}/${cache}`, keys[cache]!, c.top, netrc);
      expect(r.code).toBe(0);
      expect(narOf(c.dep).equals(nar)).toBe(true);
    }

    // Without the pin, and once the fetch is old too, both closures go.
    runOk(garretCmd("pin", "remove", "t:short", "keep-me"), { env: clientEnv });
    expect(runOk(garretCmd("pin", "list", "t:short"), { env: clientEnv })).toContain("no pins");
    await Bun.sleep(3400);
    expect(runGc(server.dataDir).objects).toBe(4);
    for (const p of [fetched.top, fetched.dep, pinned.top, pinned.dep]) expect(await status("short", p)).toBe(404);
    expect(await status("forever", shared.top)).toBe(200);
    expect(danglingChunks(server.dataDir)).toEqual([]);
  }, 90000);

  test("a fetched dependency does not keep its unfetched referrer, and the server default applies to Global caches", async () => {
    // "Global" caches follow the collector's default (--retention / GARRET_RETENTION).
    await createCache(server.url, token, "global", { retention_period: "Global" });
    const c = buildClosure(uniqueTag());
    await push("global", c);
    await Bun.sleep(6000);
    await narinfoOf(server.url, "global", c.dep, token);
    await Bun.sleep(500);
    expect(runGc(server.dataDir).objects).toBe(0); // default retention: keep forever
    // 4 s: the top (pushed 6.5 s ago) is past it; the dependency (fetched just now) stays even when
    // the two collector processes take seconds to start on a loaded machine (with 2 s, a slow
    // start expired the fetched dependency too).
    expect(runGc(server.dataDir, ["--retention", "4"]).objects).toBe(1);
    expect(await status("global", c.top)).toBe(404);
    expect(await status("global", c.dep)).toBe(200);
  }, 60000);
});

describe("quota", () => {
  test("over quota, the least recently used unpinned closure goes first, whole", async () => {
    await createCache(server.url, token, "quota", { retention_period: { Period: 0 } });
    const MiB = 1024 * 1024;
    const older = buildClosure(uniqueTag(), { bigBytes: MiB });
    const newer = buildClosure(uniqueTag(), { bigBytes: MiB });
    await push("quota", older);
    await push("quota", newer);
    await Bun.sleep(1100);
    await narinfoOf(server.url, "quota", newer.top, token);
    await Bun.sleep(500);
    const patch = await fetch(`${server.url}/_api/v1/cache-config/quota`, {
      method: "PATCH", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ quota_bytes: Math.floor(1.5 * MiB) }),
    });
    expect(patch.status).toBe(200);
    expect(((await patch.json()) as { quota_bytes: number }).quota_bytes).toBe(Math.floor(1.5 * MiB));
    expect(runGc(server.dataDir).objects).toBe(2);
    for (const p of [older.top, older.dep]) expect(await status("quota", p)).toBe(404);
    for (const p of [newer.top, newer.dep]) expect(await status("quota", p)).toBe(200);
  }, 60000);
});
