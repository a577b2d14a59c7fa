/**
 * garret watch-store (issue 6, acceptance 5): a path built after the watcher started reaches the
 * cache within a few seconds, with its closure; what existed before is left alone.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { buildClosure, requireNix, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { storeHashOf } from "../helpers/api.ts";
import { loginClient, waitFor, type Client } from "./helpers.ts";
import { StoreDirSource } from "../../src/client/watch.ts";

requireNix();

let server: TestServer;
let client: Client;
let watcher: Subprocess | null = null;

beforeAll(async () => {
  server = await startServer();
  client = loginClient(server);
});

afterAll(async () => {
  if (watcher && watcher.exitCode === null) {
    watcher.kill("SIGKILL");
    await watcher.exited;
  }
  await server?.stop();
});

const status = async (cache: string, path: string): Promise<number> =>
  (await fetch(`${server.url}/${cache}/${storeHashOf(path)}.narinfo`, { headers: { authorization: `Bearer ${client.token}` } })).status;

describe("watch-store", () => {
  test("pushes a closure built after it started within a few seconds, and nothing older", async () => {
    const cache = `watch-${uniqueTag()}`;
    await createCache(server.url, client.token, cache);
    const before = buildClosure(uniqueTag());

    const logPath = join(tempDir("garret-watch-"), "watch.log");
    watcher = Bun.spawn(garretCmd("watch-store", `local:${cache}`, "--interval", "0.2"), {
      env: { ...process.env, ...client.env }, stdout: Bun.file(logPath), stderr: Bun.file(logPath),
    });
    const log = () => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
    await waitFor("the watcher to start", () => log().includes("Watching"), 20000);
    expect(log()).toContain(`Watching the Nix database (/nix/var/nix/db/db.sqlite) for new store paths to push to local:${cache}`);

    const built = buildClosure(uniqueTag());
    const t0 = performance.now();
    await waitFor("the new closure in the cache", async () =>
      (await status(cache, built.top)) === 200 && (await status(cache, built.dep)) === 200, 15000);
    const seconds = (performance.now() - t0) / 1000;
    console.log(`watch-store: new closure in the cache ${seconds.toFixed(2)} s after the build`);
    expect(seconds).toBeLessThan(5);

    // The derivation files of the build and anything older stay out.
    const drv = runOk(["nix-store", "-qd", built.top]).trim();
    expect(await status(cache, drv)).toBe(404);
    expect(await status(cache, before.top)).toBe(404);
    expect(log()).toContain(`✓ ${built.top}`);

    // A second build that shares nothing is pushed too; the first is not pushed again.
    const again = buildClosure(uniqueTag());
    await waitFor("the second closure", async () => (await status(cache, again.top)) === 200, 15000);
    expect(log().split("\n").filter((l) => l.startsWith(`✓ ${built.top}`))).toHaveLength(1);
    expect(watcher.exitCode).toBeNull();
  });

  test("without the Nix database it falls back to polling the store directory", async () => {
    const cache = `watch-pi-${uniqueTag()}`;
    await createCache(server.url, client.token, cache);
    const logPath = join(tempDir("garret-watch-"), "watch.log");
    const w = Bun.spawn(garretCmd("watch-store", `local:${cache}`, "--interval", "0.3", "--nix-db", "/nonexistent/db.sqlite"), {
      env: { ...process.env, ...client.env }, stdout: Bun.file(logPath), stderr: Bun.file(logPath),
    });
    try {
      const log = () => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
      await waitFor("the watcher to start", () => log().includes("Watching"), 20000);
      expect(log()).toContain("Watching the store directory (/nix/store) for new store paths");
      const built = buildClosure(uniqueTag());
      await waitFor("the new closure in the cache", async () =>
        (await status(cache, built.top)) === 200 && (await status(cache, built.dep)) === 200, 60000);
    } finally {
      w.kill("SIGKILL");
      await w.exited;
    }
  });

  test("the store-directory fallback reports a new valid path once, and never an entry Nix has not registered", async () => {
    const source = new StoreDirSource();
    // What a build leaves before registering its output (mtime already canonical), and a lock file.
    const junk = [`${"0".repeat(32)}-garret-unregistered-${uniqueTag()}`, `${"1".repeat(32)}-garret-build-${uniqueTag()}.lock`]
      .map((n) => `/nix/store/${n}`);
    try {
      mkdirSync(junk[0]!);
      utimesSync(junk[0]!, 1, 1);
      writeFileSync(junk[1]!, "");
      const file = join(tempDir(), `watch-added-${uniqueTag()}`);
      writeFileSync(file, crypto.randomUUID());
      const added = runOk(["nix-store", "--add", file]).trim();
      const first = await source.next();
      expect(first).toContain(added);
      for (const j of junk) expect(first).not.toContain(j);
      expect(await source.next()).not.toContain(added);
    } finally {
      for (const j of junk) rmSync(j, { recursive: true, force: true });
    }
  });

  test("with neither the Nix database nor the store directory readable it fails with one line", async () => {
    const cache = `watch-none-${uniqueTag()}`;
    await createCache(server.url, client.token, cache);
    const r = Bun.spawnSync(garretCmd("watch-store", `local:${cache}`, "--nix-db", "/nonexistent/db.sqlite"), {
      env: { ...process.env, ...client.env, NIX_STORE_DIR: "/nonexistent/store" },
    });
    expect(r.exitCode).toBe(1);
    const err = r.stderr.toString().trim();
    expect(err).toBe("error: cannot read the Nix database (/nonexistent/db.sqlite) nor the store directory (/nonexistent/store): "
      + "ENOENT; is Nix installed, and may this user read its store?");
  });

  test("an unknown cache fails at once with one line", async () => {
    const r = Bun.spawnSync(garretCmd("watch-store", "local:no-such-cache"), { env: { ...process.env, ...client.env } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toStartWith("error: cache local:no-such-cache does not exist on server local (");
    expect(r.stderr.toString().trim().split("\n")).toHaveLength(1);
  });
});
