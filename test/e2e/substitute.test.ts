/**
 * Acceptance 1 and 2 of the vertical slice: push a real closure with `garret push`, delete it from
 * the local store, substitute it back with stock Nix trusting only the cache's key, and verify it
 * with `nix store verify` against the cache.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  buildClosure, deleteFromStore, narOf, NIX_OPTS, requireNix, run, runOk, tempDir, uniqueTag,
} from "../helpers/nix.ts";
import { garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";

requireNix();

let server: TestServer;
let env: Record<string, string>;
let netrc: string;
const cache = `e2e-${uniqueTag()}`;

beforeAll(async () => {
  server = await startServer();
  const token = mintToken(server.dataDir, "--pull", "e2e-*", "--push", "e2e-*", "--create-cache", "e2e-*",
    "--configure-cache", "e2e-*", "--destroy-cache", "e2e-*");
  env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
  runOk(garretCmd("login", "local", server.url, token), { env });
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
});

afterAll(async () => {
  await server?.stop();
});

describe("end to end with stock Nix", () => {
  let closure: { top: string; dep: string };
  let publicKey: string;
  const narBefore: Record<string, Buffer> = {};

  test("cache create and info show the public key", () => {
    runOk(garretCmd("cache", "create", `local:${cache}`), { env });
    const info = JSON.parse(runOk(garretCmd("cache", "info", `local:${cache}`, "--json"), { env }));
    expect(info.is_public).toBe(false);
    expect(info.public_key).toMatch(new RegExp(`^${cache}-1:[A-Za-z0-9+/]{43}=$`));
    publicKey = info.public_key;
  });

  test("push uploads the closure, dependencies first", async () => {
    closure = buildClosure(uniqueTag());
    for (const p of [closure.top, closure.dep]) narBefore[p] = narOf(p);
    const summary = JSON.parse(runOk(garretCmd("push", `local:${cache}`, closure.top, "--json"), { env }));
    expect(summary).toMatchObject({ closure: 2, alreadyCached: 0, uploaded: 2, failed: 0 });
    // The request line is written once the answer has gone out, so it may land after the push exits.
    const uploads = () => server.log().match(/PUT \/_api\/v1\/upload-path 200/g)?.length ?? 0;
    while (uploads() < 2) await Bun.sleep(20);
    expect(uploads()).toBe(2);
  });

  test("a second push uploads nothing", () => {
    const summary = JSON.parse(runOk(garretCmd("push", `local:${cache}`, closure.top, "--json"), { env }));
    expect(summary).toMatchObject({ closure: 2, alreadyCached: 2, uploaded: 0, deduplicated: 0 });
  });

  test("nix store verify checks the cache's signatures", () => {
    const args = ["nix", ...NIX_OPTS, "--option", "netrc-file", netrc, "store", "verify",
      "--store", `${server.url}/${cache}`, "--trusted-public-keys", publicKey, "-r", closure.top];
    const ok = run(args);
    expect(ok.stderr).not.toContain("untrusted");
    expect(ok.code).toBe(0);
    // The same check with some other key must fail: the signatures really are checked.
    const other = run(["nix", ...NIX_OPTS, "--option", "netrc-file", netrc, "store", "verify",
      "--store", `${server.url}/${cache}`, "--trusted-public-keys",
      "other-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=", "-r", closure.top]);
    expect(other.code).not.toBe(0);
  });

  test("stock Nix substitutes the deleted closure back, byte-identical", () => {
    deleteFromStore(closure.top, closure.dep);
    expect(run(["nix-store", "--check-validity", closure.dep]).code).not.toBe(0);
    runOk(["nix-store", ...NIX_OPTS, "--option", "substituters", `${server.url}/${cache}`,
      "--option", "trusted-public-keys", publicKey, "--option", "netrc-file", netrc, "-r", closure.top]);
    for (const p of [closure.top, closure.dep]) expect(narOf(p).equals(narBefore[p]!)).toBe(true);
  });

  test("configure makes the cache public; destroy removes it", async () => {
    const anon = () => fetch(`${server.url}/${cache}/${closure.top.slice(11, 43)}.narinfo`);
    expect((await anon()).status).toBe(404);
    runOk(garretCmd("cache", "configure", `local:${cache}`, "--public", "--priority", "30"), { env });
    expect((await anon()).status).toBe(200);
    expect(await (await fetch(`${server.url}/${cache}/nix-cache-info`)).text()).toContain("Priority: 30");
    const tmp = `e2e-tmp-${uniqueTag()}`;
    runOk(garretCmd("cache", "create", `local:${tmp}`), { env });
    runOk(garretCmd("cache", "destroy", `local:${tmp}`), { env });
    const gone = run(garretCmd("cache", "info", `local:${tmp}`), { env });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toStartWith(`error: cache local:${tmp} does not exist on server local (`);
    expect(gone.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("the token secret is private to the server user", () => {
    expect(statSync(join(server.dataDir, "token-secret")).mode & 0o777).toBe(0o600);
  });

  test("substitution refuses a cache signed by an untrusted key", () => {
    const other = buildClosure(uniqueTag());
    runOk(garretCmd("push", `local:${cache}`, other.top, "--json"), { env });
    deleteFromStore(other.top, other.dep);
    const r = run(["nix-store", ...NIX_OPTS, "--option", "substituters", `${server.url}/${cache}`,
      "--option", "trusted-public-keys", "other-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
      "--option", "netrc-file", netrc, "-r", other.top]);
    expect(r.code).not.toBe(0);
    expect(run(["nix-store", "--check-validity", other.top]).code).not.toBe(0);
  });
});
