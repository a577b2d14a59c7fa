/**
 * Issue 17, "the CLI tells the user what to do": errors name the alias, the cache and the
 * permission a token lacked, with the cache the user probably meant; a path that is not a store
 * path is said so before Nix words it as a flake; `garret login` checks the URL and token before
 * saving; `garret whoami` and `garret logout`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClosure, requireNix, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { expiredToken } from "../helpers/tokens.ts";
import { freePort, inPty, loginClient, runAsync, runAsyncOk, type Client } from "./helpers.ts";

requireNix();

let server: TestServer;
let admin: Client;
const tag = uniqueTag();
const team = `team-${tag}`;

beforeAll(async () => {
  server = await startServer();
  admin = loginClient(server);
  await createCache(server.url, admin.token, team);
});

afterAll(async () => {
  await server?.stop();
});

/** A fresh client config logged in as `alias` with `token`. */
async function clientWith(token: string, alias = "local"): Promise<Record<string, string>> {
  const env = { XDG_CONFIG_HOME: tempDir("garret-client-"), GARRET_RETRY_BASE_MS: "20" };
  await runAsyncOk(garretCmd("login", alias, server.url, token), { env });
  return env;
}

const configFile = (env: Record<string, string>) => join(env.XDG_CONFIG_HOME!, "garret", "config.toml");

describe("errors name the thing and the fix", () => {
  test("a missing cache names the alias and server, and the cache the token can see that was meant", async () => {
    const typo = team.slice(0, -1); // one letter short
    for (const args of [["cache", "info", `local:${typo}`], ["push", `local:${typo}`, buildClosure(uniqueTag()).top]]) {
      const r = await runAsync(garretCmd(...args), { env: admin.env });
      expect(r.stderr).toBe(`error: cache local:${typo} does not exist on server local (did you mean local:${team}?)\n`);
      expect(r.code).toBe(1);
    }
    const far = await runAsync(garretCmd("cache", "info", "local:zzz-nothing-like-it"), { env: admin.env });
    expect(far.stderr).toBe("error: cache local:zzz-nothing-like-it does not exist on server local (or your token may not see it); "
      + "garret cache list local shows the caches you can see\n");
  });

  test("a cache the token cannot see is not suggested", async () => {
    const other = await clientWith(mintToken(server.dataDir, "--sub", "other", "--pull", "elsewhere-*"));
    const r = await runAsync(garretCmd("cache", "info", `local:${team.slice(0, -1)}`), { env: other });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain(team);
    expect(r.stderr).toContain("(or your token may not see it)");
  });

  test("a refusal says which permission the token lacks on which cache", async () => {
    const puller = await clientWith(mintToken(server.dataDir, "--sub", "puller", "--pull", "team-*"));
    const { top } = buildClosure(uniqueTag());
    const push = await runAsync(garretCmd("push", `local:${team}`, top), { env: puller });
    expect(push.code).toBe(1);
    expect(push.stderr).toContain(`error: your token for local may not push to ${team} (it needs a token minted with --push ${team} or a pattern matching it)\n`);
    const destroy = await runAsync(garretCmd("cache", "destroy", "--yes", `local:${team}`), { env: puller });
    expect(destroy.stderr).toBe(`error: your token for local may not destroy ${team} (it needs a token minted with --destroy-cache ${team} or a pattern matching it)\n`);
    const create = await runAsync(garretCmd("cache", "create", `local:team-new-${tag}`), { env: puller });
    expect(create.stderr).toBe(`error: your token for local may not create cache team-new-${tag} (it needs a token minted with --create-cache team-new-${tag} or a pattern matching it)\n`);
  });

  test("push of a directory that is not a store path says so, not Nix's flake wording", async () => {
    const dir = tempDir("garret-notstore-");
    const r = await runAsync(garretCmd("push", `local:${team}`, dir), { env: admin.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: ${dir} is not a store path; give a path in /nix/store or a symlink to one such as ./result\n`);
    const gone = await runAsync(garretCmd("push", `local:${team}`, join(dir, "result")), { env: admin.env });
    expect(gone.stderr).toBe(`error: ${join(dir, "result")} does not exist; give store paths (/nix/store/…) or symlinks to them such as ./result\n`);
  });

  test("a store path Nix does not know is Nix's reason under the plain command name, no internal flags", async () => {
    // A file in the store that Nix never registered: Nix itself must be asked, and says it is not valid.
    const fake = `/nix/store/${"0".repeat(32)}-garret-unregistered-${tag}`;
    writeFileSync(fake, "x");
    try {
      const r = await runAsync(garretCmd("push", `local:${team}`, fake), { env: { ...admin.env, GARRET_NIX_DB: "off" } });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`error: nix path-info failed: path '${fake}' is not valid\n`);
      expect(r.stderr).not.toContain("experimental");
    } finally {
      rmSync(fake, { force: true });
    }
  });

  test("a server that is down is said in words, not the runtime's", async () => {
    const env = { XDG_CONFIG_HOME: tempDir("garret-client-"), GARRET_RETRY_BASE_MS: "1" };
    const port = await freePort();
    await runAsyncOk(garretCmd("login", "down", `http://127.0.0.1:${port}`, "--no-check"), { env });
    const r = await runAsync(garretCmd("cache", "info", "down:c", "--json"), { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: cannot reach http://127.0.0.1:${port}: connection refused (is garret serve running there, on that port?) (NetworkError)\n`);
    expect(r.stderr).not.toContain("Is the computer able");
  });

  test("an unknown alias lists the known ones and suggests the nearest", async () => {
    const r = await runAsync(garretCmd("cache", "info", "locl:x"), { env: admin.env });
    expect(r.stderr).toBe('error: unknown server alias "locl"; did you mean "local"? (known: local)\n');
  });
});

describe("login checks before it saves", () => {
  test("unreachable server, non-garret URL and rejected token: one line each, nothing saved", async () => {
    const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
    const port = await freePort();
    const html = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("<html>nginx</html>", { status: 404, headers: { "content-type": "text/html" } }) });
    try {
      const cases: [string[], string][] = [
        [[`http://127.0.0.1:${port}`, admin.token], `error: cannot reach http://127.0.0.1:${port}: connection refused (is garret serve running there, on that port?); `],
        [[`http://127.0.0.1:${html.port}`, admin.token], `error: http://127.0.0.1:${html.port} is not a garret server (GET /_api/v1/whoami answered 404); give the server's root URL, as garret serve prints it; `],
        [[server.url, "not-a-token"], `error: ${server.url} refused the token: `],
        [[server.url, await expiredToken(server.dataDir)], `error: ${server.url} refused the token: token has expired; `],
      ];
      for (const [args, start] of cases) {
        const r = await runAsync(garretCmd("login", "x", ...args), { env });
        expect(r.code).toBe(1);
        expect(r.stderr).toStartWith(start);
        expect(r.stderr).toEndWith("nothing was saved (garret login --no-check saves without asking the server)\n");
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(existsSync(configFile(env))).toBe(false);
      }
    } finally {
      html.stop(true);
    }
  });

  test("on a terminal, a token typed at the prompt is checked too: refused, not echoed, nothing saved", async () => {
    const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
    const typed = `typo-${tag}-not-a-token`;
    const r = await inPty(garretCmd("login", "p", server.url), env, [{ waitFor: "Token for", send: `${typed}\r` }]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`error: ${server.url} refused the token: `);
    expect(r.out).toContain("nothing was saved");
    expect(r.out).not.toContain(typed);
    expect(existsSync(configFile(env))).toBe(false);
  });

  test("a cache's URL is corrected to the server's root, with a note; the saved line says who the token is", async () => {
    const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
    const token = mintToken(server.dataDir, "--sub", "carol", "--pull", "*");
    const r = await runAsyncOk(garretCmd("login", "c", `${server.url}/${team}/`, token), { env });
    expect(r.stderr).toBe(`note: ${server.url}/${team} is the address of cache ${team}; saving the server's root ${server.url} (name the cache as c:${team})\n`);
    expect(r.stdout).toMatch(new RegExp(`^✓ Saved server c \\(${server.url.replace(/[.]/g, "\\.")}, sub carol, valid until \\d{4}-\\d\\d-\\d\\d\\) to `));
    expect(readFileSync(configFile(env), "utf8")).toContain(`endpoint = "${server.url}"\n`);
    expect((await runAsyncOk(garretCmd("cache", "info", `c:${team}`, "--json"), { env })).stdout).toContain(`"substituter_endpoint"`);
  });

  test("a URL that does not parse is a usage error in garret's words", async () => {
    const r = await runAsync(garretCmd("login", "x", "http://[::1", "tok"), { env: { XDG_CONFIG_HOME: tempDir("garret-client-") } });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: URL is not a valid URL: "http://[::1" (e.g. http://cache.example.com:8080)\n');
  });

  test("--no-check saves a server that is not up yet", async () => {
    const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
    const r = await runAsyncOk(garretCmd("login", "later", "http://127.0.0.1:9", "tok", "--no-check"), { env });
    expect(r.stdout).toStartWith("✓ Saved server later (http://127.0.0.1:9, not checked) to ");
  });
});

describe("whoami and logout", () => {
  test("whoami shows server, sub, expiry and permissions per pattern, in the token's order; --json too", async () => {
    const token = mintToken(server.dataDir, "--sub", "dave", "--pull", "team-*", "--push", "team-a", "--create-cache", "*");
    const env = await clientWith(token, "w");
    const text = (await runAsyncOk(garretCmd("whoami"), { env })).stdout;
    expect(text).toContain(`Server:      w (${server.url}, garret `);
    expect(text).toContain("Sub:         dave\n");
    expect(text).toMatch(/Expires: +\d{4}-\d\d-\d\dT[\d:.]+Z \(in 2\d hours\)\n/);
    expect(text).toContain("  team-*  pull\n  team-a  push\n  *       create-cache\n");
    const json = JSON.parse((await runAsyncOk(garretCmd("whoami", "w", "--json"), { env })).stdout);
    expect(json).toMatchObject({
      alias: "w", endpoint: server.url, server: "garret",
      token: { sub: "dave", permissions: [{ pattern: "team-*", allows: ["pull"] }, { pattern: "team-a", allows: ["push"] }, { pattern: "*", allows: ["create-cache"] }] },
    });
    expect(json.token.expires_at).toBeGreaterThan(Date.now() / 1000);
    expect(typeof json.token.id).toBe("string");
    expect(JSON.stringify(json)).not.toContain(token); // the token itself is never echoed
  });

  test("whoami with a revoked token says the server refused it and how to fix it", async () => {
    const token = mintToken(server.dataDir, "--sub", `rev-${tag}`, "--pull", "*");
    const env = await clientWith(token, "r");
    runOk(garretCmd("token", "revoke", "--sub", `rev-${tag}`, "--data", server.dataDir));
    // Revocation reaches the server's copy of the list within a couple of seconds.
    let r = await runAsync(garretCmd("whoami", "r"), { env });
    for (let i = 0; i < 60 && r.code === 0; i++) {
      await Bun.sleep(250);
      r = await runAsync(garretCmd("whoami", "r"), { env });
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: server r (${server.url}) refused the token: token has been revoked; run garret login r URL TOKEN with a valid token\n`);
  });

  test("anonymous whoami, over the endpoint itself", async () => {
    const res = await fetch(`${server.url}/_api/v1/whoami`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ server: "garret", token: null });
    const bad = await fetch(`${server.url}/_api/v1/whoami`, { headers: { authorization: "Bearer nonsense" } });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toMatchObject({ error: "Unauthorized" });
  });

  test("logout forgets the alias and its token; an unknown alias lists the known ones", async () => {
    const token = mintToken(server.dataDir, "--sub", "erin", "--pull", "*");
    const env = await clientWith(token, "keep");
    await runAsyncOk(garretCmd("login", "gone", server.url, token), { env });
    const r = await runAsyncOk(garretCmd("logout", "gone"), { env });
    expect(r.stdout).toStartWith("✓ Forgot server gone and its token");
    const config = readFileSync(configFile(env), "utf8");
    expect(config).not.toContain("[servers.gone]");
    expect(config).toContain("[servers.keep]");
    expect(config.split(token).length).toBe(2); // once, for keep
    const u = await runAsync(garretCmd("logout", "nope"), { env });
    expect(u.code).toBe(1);
    expect(u.stderr).toBe('error: unknown server alias "nope" (known: keep); to add it: garret login nope URL TOKEN\n');
    const after = await runAsync(garretCmd("cache", "info", "gone:x"), { env });
    expect(after.stderr).toContain('unknown server alias "gone"');
  });
});
