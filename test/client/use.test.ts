/**
 * garret login, use and cache list/destroy (issue 6, acceptance 3; cache list on the server's listing, issue 14): `garret use` alone makes stock
 * Nix substitute from a private cache, a second run changes nothing, other settings survive.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClosure, narOf, requireNix, run, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { claimsOf } from "../helpers/tokens.ts";
import { inPty, loginClient, runAsync, runAsyncOk, type Client } from "./helpers.ts";

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

const configOf = (env: Record<string, string>): string => readFileSync(join(env.XDG_CONFIG_HOME!, "garret", "config.toml"), "utf8");

describe("login", () => {
  test("asks for the token on a terminal without echoing it", async () => {
    const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
    const secret = mintToken(server.dataDir, "--sub", "prompted", "--pull", "*");
    const r = await inPty(garretCmd("login", "prompted", server.url), env, [{ waitFor: "Token for", send: `${secret}\r` }]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("(input hidden");
    expect(r.out).toContain("✓ Saved server prompted");
    expect(r.out).not.toContain(secret);
    expect(configOf(env)).toContain(`token = "${secret}"`);
    expect(statSync(join(env.XDG_CONFIG_HOME, "garret", "config.toml")).mode & 0o777).toBe(0o600);
  });

  test("takes the token from GARRET_TOKEN, and saves none when there is no terminal", async () => {
    const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
    const fromEnv = mintToken(server.dataDir, "--sub", "fromenv", "--pull", "*");
    await runAsyncOk(garretCmd("login", "fromenv", server.url), { env: { ...env, GARRET_TOKEN: fromEnv } });
    expect(configOf(env)).toContain(`token = "${fromEnv}"`);
    const r = await runAsyncOk(garretCmd("login", "anon", server.url), { env: { ...env, GARRET_TOKEN: "" } });
    expect(r.stdout).toContain("no token");
    expect(configOf(env)).toMatch(/\[servers\.anon\]\nendpoint = "[^"]+"\n\n/);
  });

  test("bad URLs are one-line errors", async () => {
    const r = await runAsync(garretCmd("login", "x", "ftp://nope"), { env: client.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: URL must start with http:// or https://, got "ftp://nope"\n');
  });
});

describe("use", () => {
  test("nix-store -r substitutes from a private cache with only what garret use wrote; a second run changes nothing", async () => {
    const cache = `use-${uniqueTag()}`;
    // A fresh user: XDG_CONFIG_HOME holds both garret's and Nix's user config.
    const home = tempDir("garret-home-");
    const env = { XDG_CONFIG_HOME: home, XDG_CACHE_HOME: tempDir("garret-xdg-cache-"), GARRET_TOKEN: client.token };
    await runAsyncOk(garretCmd("login", "main", server.url), { env });
    await runAsyncOk(garretCmd("cache", "create", `main:${cache}`), { env });
    const closure = buildClosure(uniqueTag());
    const nars = [closure.top, closure.dep].map((p) => narOf(p));
    await runAsyncOk(garretCmd("push", `main:${cache}`, closure.top), { env });
    runOk(["nix-store", "--delete", closure.top, closure.dep]);

    // The system nix.conf of this machine, minus cache.nixos.org (no network here).
    const sysConf = tempDir("garret-sysconf-");
    writeFileSync(join(sysConf, "nix.conf"), "build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command\n");
    const nixEnv = { NIX_CONF_DIR: sysConf, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: env.XDG_CACHE_HOME };
    const realise = () => run(["nix-store", "-r", closure.top], { env: nixEnv });

    expect(realise().code).not.toBe(0); // nothing configured yet

    const first = await runAsyncOk(garretCmd("use", `main:${cache}`), { env });
    const conf = join(home, "nix", "nix.conf");
    const netrc = join(home, "nix", "netrc");
    expect(first.stdout).toContain(`✓ Added to ${conf}:`);
    const confText = readFileSync(conf, "utf8");
    const key = JSON.parse((await runAsyncOk(garretCmd("cache", "info", `main:${cache}`, "--json"), { env })).stdout).public_key;
    expect(confText).toBe(`extra-substituters = ${server.url}/${cache}\nextra-trusted-public-keys = ${key}\nnetrc-file = ${netrc}\n`);
    // Issue 17: netrc gets a pull-only token for the cache, not the login token.
    const written = /^machine 127\.0\.0\.1 password (\S+)\n$/.exec(readFileSync(netrc, "utf8"))![1]!;
    expect(written).not.toBe(client.token);
    expect((claimsOf(written)["https://jwt.attic.rs/v1"] as { caches: unknown }).caches).toEqual({ [cache]: { r: 1 } });
    expect(statSync(netrc).mode & 0o777).toBe(0o600);

    const got = realise();
    expect(got.stderr).not.toContain("error");
    expect(got.code).toBe(0);
    expect([closure.top, closure.dep].map((p) => narOf(p).equals(nars.shift()!))).toEqual([true, true]);

    const mtimes = [statSync(conf).mtimeMs, statSync(netrc).mtimeMs];
    const second = await runAsyncOk(garretCmd("use", `main:${cache}`), { env });
    expect(second.stdout).toBe(`✓ main:${cache} is already configured in ${conf}; nothing changed\n`);
    expect(readFileSync(conf, "utf8")).toBe(confText);
    expect([statSync(conf).mtimeMs, statSync(netrc).mtimeMs]).toEqual(mtimes);
  });

  test("keeps other settings, joins an existing extra-substituters line, --dry-run writes nothing", async () => {
    const cache = `keep-${uniqueTag()}`;
    await runAsyncOk(garretCmd("cache", "create", `local:${cache}`), { env: client.env });
    const dir = tempDir("garret-nixconf-");
    const conf = join(dir, "nix.conf");
    const netrc = join(dir, "my-netrc");
    const original = "# my settings\nmax-jobs = 4\nextra-substituters = https://example.org # mine\nnetrc-file = " + netrc + "\n";
    writeFileSync(conf, original);
    writeFileSync(netrc, "machine example.org\n  login me\n  password hunter2\n", { mode: 0o600 });

    const dry = await runAsyncOk(garretCmd("use", `local:${cache}`, "--nix-conf", conf, "--dry-run"), { env: client.env });
    expect(dry.stdout).toContain(`Would add to ${conf}:\n+ extra-substituters = ${server.url}/${cache}\n+ extra-trusted-public-keys = ${cache}-1:`);
    expect(dry.stdout).toContain(`Would write credentials for machine 127.0.0.1 to ${netrc}`);
    expect(dry.stdout).not.toContain(client.token);
    expect(readFileSync(conf, "utf8")).toBe(original);

    await runAsyncOk(garretCmd("use", `local:${cache}`, "--nix-conf", conf), { env: client.env });
    const lines = readFileSync(conf, "utf8").split("\n");
    expect(lines[0]).toBe("# my settings");
    expect(lines[1]).toBe("max-jobs = 4");
    expect(lines[2]).toBe(`extra-substituters = https://example.org ${server.url}/${cache} # mine`);
    expect(lines[3]).toBe(`netrc-file = ${netrc}`); // the user's netrc is reused, not replaced
    expect(lines[4]).toMatch(new RegExp(`^extra-trusted-public-keys = ${cache}-1:`));
    expect(readFileSync(netrc, "utf8")).toMatch(/^machine example.org\n  login me\n  password hunter2\nmachine 127.0.0.1 password \S+\n$/);
    expect(readFileSync(netrc, "utf8")).not.toContain(client.token);

    // A token given with --token replaces only that password.
    const token2 = mintToken(server.dataDir, "--pull", "*");
    const env2 = { ...client.env, XDG_CONFIG_HOME: tempDir("garret-client-") };
    await runAsyncOk(garretCmd("login", "local", server.url, token2), { env: env2 });
    await runAsyncOk(garretCmd("use", `local:${cache}`, "--nix-conf", conf, "--token", token2), { env: env2 });
    expect(readFileSync(netrc, "utf8")).toBe(`machine example.org\n  login me\n  password hunter2\nmachine 127.0.0.1 password ${token2}\n`);
  });

  test("a public cache gets no netrc; NIX_USER_CONF_FILES picks the file", async () => {
    const cache = `pub-${uniqueTag()}`;
    await runAsyncOk(garretCmd("cache", "create", `local:${cache}`, "--public"), { env: client.env });
    const dir = tempDir("garret-nixconf-");
    const conf = join(dir, "user.conf");
    await runAsyncOk(garretCmd("use", `local:${cache}`), { env: { ...client.env, NIX_USER_CONF_FILES: `${conf}:/nonexistent` } });
    const text = readFileSync(conf, "utf8");
    expect(text).toContain(`extra-substituters = ${server.url}/${cache}\n`);
    expect(text).not.toContain("netrc-file");
    expect(existsSync(join(dir, "netrc"))).toBe(false);
  });

  test("a cache the token cannot see is a one-line error", async () => {
    const r = await runAsync(garretCmd("use", "local:does-not-exist", "--nix-conf", join(tempDir(), "nix.conf")), { env: client.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: cache local:does-not-exist does not exist on server local (or your token may not see it); garret cache list local shows the caches you can see\n");
  });
});

describe("cache list and destroy", () => {
  test("list shows every cache the token may see (the server's listing) and remembered ones gone as missing; --json parses", async () => {
    const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
    const tag = uniqueTag();
    const scoped = mintToken(server.dataDir, "--pull", `ls${tag}-*`, "--create-cache", `ls${tag}-*`, "--destroy-cache", `ls${tag}-*`);
    await runAsyncOk(garretCmd("login", "l", server.url, scoped), { env });
    const a = `ls${tag}-a`;
    const b = `ls${tag}-b`;
    const c = `ls${tag}-c`;
    // Public caches of other tests are listed too (anyone may read them); none of ours exists yet.
    const ours = (entries: Record<string, unknown>[]): Record<string, unknown>[] => entries.filter((e) => String(e.name).startsWith(`ls${tag}-`));
    expect((await runAsyncOk(garretCmd("cache", "list"), { env })).stdout).not.toContain(`ls${tag}-`);
    await runAsyncOk(garretCmd("cache", "create", `l:${a}`, "--public"), { env });
    await runAsyncOk(garretCmd("cache", "create", `l:${b}`), { env });
    // Created elsewhere, never used from here: the server's listing (GET /_api/v1/caches) shows it.
    await runAsyncOk(garretCmd("cache", "create", `local:${c}`), { env: client.env });
    const listed = JSON.parse((await runAsyncOk(garretCmd("cache", "list", "--json"), { env })).stdout);
    expect(ours(listed)).toEqual([
      expect.objectContaining({ server: "l", name: a, status: "ok", is_public: true, substituter_endpoint: `${server.url}/${a}`, paths: 0 }),
      expect.objectContaining({ server: "l", name: b, status: "ok", is_public: false }),
      expect.objectContaining({ server: "l", name: c, status: "ok", is_public: false }),
    ]);
    const table = (await runAsyncOk(garretCmd("cache", "list"), { env })).stdout.split("\n");
    expect(table[0]).toMatch(/^CACHE\s+PUBLIC\s+STATUS\s+ENDPOINT$/);
    expect(table).toContainEqual(expect.stringMatching(new RegExp(`^l:${a}\\s+yes\\s+ok\\s+${server.url}/${a}$`)));

    // Destroyed here: forgotten. Destroyed elsewhere: shown as missing.
    await runAsyncOk(garretCmd("cache", "destroy", `l:${a}`), { env });
    await runAsyncOk(garretCmd("cache", "destroy", `local:${b}`), { env: client.env });
    await runAsyncOk(garretCmd("cache", "destroy", `local:${c}`), { env: client.env });
    const after = JSON.parse((await runAsyncOk(garretCmd("cache", "list", "l", "--json"), { env })).stdout);
    expect(ours(after)).toEqual([{ server: "l", name: b, status: "missing" }]);
  });

  test("destroy asks on a terminal; no keeps the cache, yes destroys it; --yes skips the question", async () => {
    const cache = `ask-${uniqueTag()}`;
    await runAsyncOk(garretCmd("cache", "create", `local:${cache}`), { env: client.env });
    const no = await inPty(garretCmd("cache", "destroy", `local:${cache}`), client.env, [{ waitFor: "[y/N]", send: "n\r" }]);
    expect(no.code).toBe(1);
    expect(no.out).toContain(`error: not destroying ${cache}`);
    expect((await runAsync(garretCmd("cache", "info", `local:${cache}`), { env: client.env })).code).toBe(0);

    const yes = await inPty(garretCmd("cache", "destroy", `local:${cache}`), client.env, [{ waitFor: "[y/N]", send: "y\r" }]);
    expect(yes.code).toBe(0);
    expect(yes.out).toContain(`✓ Destroyed cache ${cache}`);
    expect((await runAsync(garretCmd("cache", "info", `local:${cache}`), { env: client.env })).code).toBe(1);

    const other = `ask2-${uniqueTag()}`;
    await runAsyncOk(garretCmd("cache", "create", `local:${other}`), { env: client.env });
    const skip = await inPty(garretCmd("cache", "destroy", `local:${other}`, "--yes"), client.env);
    expect(skip.code).toBe(0);
    expect(skip.out).not.toContain("[y/N]");
  });
});

