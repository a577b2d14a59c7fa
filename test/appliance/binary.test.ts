/**
 * Issue 7, acceptance 1: build the single executable and run the end-to-end substitution flow
 * against it (not the sources), from a directory outside the checkout.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClosure, deleteClosure, narOf, requireNix, run, runOk, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { BUN, REPO, startServer, withTestDatabase, type TestServer } from "../helpers/server.ts";
import { pageWeight } from "../helpers/dashboard.ts";

requireNix();

const outside = tempDir("garret-outside-");
const binary = join(outside, "garret");
let server: TestServer;
const saved = process.env.GARRET_BIN;

let buildDir: string;

beforeAll(async () => {
  buildDir = tempDir("garret-build-");
  const build = join(buildDir, "garret");
  // What earlier builds left (the maps of chunks of another content, and the binary's own map).
  for (const stale of ["garret.map", "serve-0a1b2c3d.js.map"]) writeFileSync(join(buildDir, stale), "{}");
  runOk([BUN, join(REPO, "scripts/build.ts"), "--outfile", build]);
  copyFileSync(build, binary);
  run(["chmod", "+x", binary]);
  process.env.GARRET_BIN = binary; // garretCmd and startServer now run the binary
  server = await startServer({ cwd: outside });
});

afterAll(async () => {
  await server?.stop();
  if (saved === undefined) delete process.env.GARRET_BIN;
  else process.env.GARRET_BIN = saved;
});

test("the build leaves the binary alone in its directory: no source maps, stale or new", () => {
  expect(readdirSync(buildDir)).toEqual(["garret"]);
});

test("the binary knows its version and commit", () => {
  const out = runOk([binary, "--version"], { cwd: outside });
  expect(out).toMatch(/^garret \d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?\)\n$/);
});

test("serve, token, login, cache create, push and stock Nix substitution, all from the binary", () => {
  const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
  const token = runOk([binary, ...withTestDatabase(["token", "create", "--data", server.dataDir, "--sub", "ops", "--validity", "1d",
    "--pull", "bin-*", "--push", "bin-*", "--create-cache", "bin-*"])], { cwd: outside }).trim();
  runOk([binary, "login", "local", server.url, token], { cwd: outside, env });
  runOk([binary, "cache", "create", "local:bin-cache"], { cwd: outside, env });
  const key = JSON.parse(runOk([binary, "cache", "info", "local:bin-cache", "--json"], { cwd: outside, env })).public_key;
  const { top, dep } = buildClosure(uniqueTag());
  const before = { top: narOf(top), dep: narOf(dep) };
  const summary = JSON.parse(runOk([binary, "push", "local:bin-cache", top, "--json"], { cwd: outside, env }));
  expect(summary).toMatchObject({ uploaded: 2, failed: 0 });
  deleteClosure(top);
  const netrc = join(outside, "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
  const r = substitute(`${server.url}/bin-cache`, key, top, netrc);
  expect(r.code).toBe(0);
  expect(narOf(top).equals(before.top)).toBe(true);
  expect(narOf(dep).equals(before.dep)).toBe(true);
});

test("the binary ignores a .env and a bunfig.toml in its working directory", () => {
  const dir = tempDir("garret-dotenv-");
  writeFileSync(join(dir, ".env"), "GARRET_LISTEN=10.9.8.7:1234\n");
  writeFileSync(join(dir, "bunfig.toml"), "preload = [\"./nope.ts\"]\n");
  const r = run([binary, "config", "print"], { cwd: dir });
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('listen = "127.0.0.1:8080"');
  expect(r.stdout).not.toContain("10.9.8.7");
});

test("the binary serves the dashboard, started outside the checkout (issue 14, acceptance 3)", async () => {
  const page = await fetch(`${server.url}/`, { headers: { accept: "text/html" } });
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('<main id="main"');
  const { total, assets } = await pageWeight(server.url);
  expect(assets.some((a) => a.endsWith(".js"))).toBe(true);
  expect(total).toBeLessThanOrEqual(200 * 1024);
  const cache = await fetch(`${server.url}/bin-cache/`, { headers: { accept: "text/html" } });
  expect(await cache.text()).toContain(assets[0]!);
});
