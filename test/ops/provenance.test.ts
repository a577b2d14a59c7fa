/**
 * Issue 16 acceptance 2 and provenance: every push records sub, token id (jti), time and client
 * address (`garret cache log`); two uploaders push to one cache, purging one removes exactly its
 * paths and their dependants (stock Nix can no longer substitute them, the other's still
 * substitute), and the dry run lists the same set; `garret audit` lists the admin actions.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { buildClosure, deleteFromStore, outcome, requireNix, run, runOk, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { ATTIC_CLAIM } from "../../src/auth/permissions.ts";
import type { PurgeAllAnswer, PurgeAnswer, PushView } from "../../src/api/garret.ts";

requireNix();

let server: TestServer;
const cache = `prov-${uniqueTag()}`;
const clients: Record<string, Record<string, string>> = {};
let publicKey: string;
let netrc: string;

/** A token carrying an id (jti), signed with the server's secret as an Attic-format token. */
async function tokenWithId(dataDir: string, sub: string, jti: string): Promise<string> {
  const key = new Uint8Array(Buffer.from(readFileSync(join(dataDir, "token-secret"), "utf8").trim(), "base64"));
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ [ATTIC_CLAIM]: { caches: { "prov-*": { r: 1, w: 1 } } } })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" }).setSubject(sub).setJti(jti).setIssuedAt(now).setExpirationTime(now + 3600)
    .sign(key);
}

function login(name: string, token: string): void {
  clients[name] = { XDG_CONFIG_HOME: tempDir("garret-client-") };
  runOk(garretCmd("login", "local", server.url, token), { env: clients[name] });
}

const push = (who: string, path: string) =>
  JSON.parse(runOk(garretCmd("push", `local:${cache}`, path, "--json"), { env: clients[who] }));
const garret = (...args: string[]) => runOk(garretCmd(...args), { env: clients.admin });

beforeAll(async () => {
  server = await startServer();
  const root = readFileSync(join(server.dataDir, "root-token"), "utf8").trim();
  login("admin", root);
  login("alice", mintToken(server.dataDir, "--sub", "alice", "--pull", "prov-*", "--push", "prov-*"));
  login("bob", mintToken(server.dataDir, "--sub", "bob", "--pull", "prov-*", "--push", "prov-*"));
  login("carol", await tokenWithId(server.dataDir, "carol", "ci-job-42"));
  garret("cache", "create", `local:${cache}`);
  publicKey = JSON.parse(garret("cache", "info", `local:${cache}`, "--json")).public_key;
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${root}\n`);
});

afterAll(async () => {
  await server?.stop();
});

describe("provenance and purge", () => {
  // A: alice pushed A.dep, bob pushed A.top on top of it (a dependant of alice's path).
  // B: all bob's. C: all alice's. D: carol's, with a token id.
  let A: { top: string; dep: string }, B: typeof A, C: typeof A, D: typeof A;

  test("pushes record sub, token id, time and client address", () => {
    [A, B, C, D] = [buildClosure(uniqueTag()), buildClosure(uniqueTag()), buildClosure(uniqueTag()), buildClosure(uniqueTag())];
    const before = Math.floor(Date.now() / 1000);
    expect(push("alice", A.dep)).toMatchObject({ uploaded: 1 });
    expect(push("bob", A.top)).toMatchObject({ uploaded: 1, alreadyCached: 1 });
    expect(push("bob", B.top)).toMatchObject({ uploaded: 2 });
    expect(push("alice", C.top)).toMatchObject({ uploaded: 2 });
    expect(push("carol", D.top)).toMatchObject({ uploaded: 2 });
    const log = JSON.parse(garret("cache", "log", `local:${cache}`, "--json")) as PushView[];
    expect(log.length).toBe(8);
    const of = (p: string) => log.find((l) => l.store_path === p)!;
    // garret token create gives every token an id (the registry's, issue 16).
    expect(of(A.dep)).toMatchObject({ uploaded_by: "alice", token_id: expect.stringMatching(/^[0-9a-f-]{36}$/), client: "127.0.0.1" });
    expect(of(A.top)).toMatchObject({ uploaded_by: "bob", token_id: expect.stringMatching(/^[0-9a-f-]{36}$/), client: "127.0.0.1" });
    expect(of(D.dep)).toMatchObject({ uploaded_by: "carol", token_id: "ci-job-42" });
    for (const l of log) expect(l.pushed_at).toBeGreaterThanOrEqual(before - 1);
    const alice = JSON.parse(garret("cache", "log", `local:${cache}`, "--uploaded-by", "alice", "--json")) as PushView[];
    expect(alice.map((l) => l.store_path).sort()).toEqual([A.dep, C.top, C.dep].sort());
    const job = JSON.parse(garret("cache", "log", `local:${cache}`, "--token-id", "ci-job-42", "--json")) as PushView[];
    expect(job.map((l) => l.store_path).sort()).toEqual([D.top, D.dep].sort());
    expect(garret("cache", "log", `local:${cache}`, "--uploaded-by", "alice")).toMatch(new RegExp(`alice  [0-9a-f-]{36}  127\\.0\\.0\\.1  ${A.dep}`));
  });

  test("the log is for those who may configure the cache; a private cache looks missing to others", () => {
    const r = run(garretCmd("cache", "log", `local:${cache}`), { env: clients.alice });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`error: your token for local may not configure ${cache} (it needs a token minted with --configure-cache ${cache} or a pattern matching it)`);
    const other = { XDG_CONFIG_HOME: tempDir("garret-client-") };
    runOk(garretCmd("login", "local", server.url, mintToken(server.dataDir, "--sub", "eve", "--pull", "elsewhere")), { env: other });
    const hidden = run(garretCmd("cache", "log", `local:${cache}`), { env: other });
    const none = `prov-none-${uniqueTag()}`;
    const missing = run(garretCmd("cache", "log", `local:${none}`), { env: other });
    expect(hidden.stderr.trim()).toBe(`error: cache local:${cache} does not exist on server local (or your token may not see it); garret cache list local shows the caches you can see`);
    expect(missing.stderr.trim()).toBe(hidden.stderr.trim().replace(cache, none));
  });

  test("purging alice: the dry run lists what the purge then removes; stock Nix loses exactly those", () => {
    const dry = JSON.parse(garret("cache", "purge", `local:${cache}`, "--uploaded-by", "alice", "--dry-run", "--json")) as PurgeAnswer;
    expect(dry.dry_run).toBe(true);
    expect(dry.purged).toEqual([A.dep, C.top, C.dep].sort());
    expect(dry.dependants).toEqual([A.top]);
    // nothing went yet
    expect(JSON.parse(garret("cache", "log", `local:${cache}`, "--json")).length).toBe(8);
    // the token-id form selects carol's job only
    const job = JSON.parse(garret("cache", "purge", `local:${cache}`, "--token-id", "ci-job-42", "--dry-run", "--json")) as PurgeAnswer;
    expect(job.purged).toEqual([D.top, D.dep].sort());
    expect(job.dependants).toEqual([]);

    const done = JSON.parse(garret("cache", "purge", `local:${cache}`, "--uploaded-by", "alice", "--json")) as PurgeAnswer;
    expect(done).toEqual({ ...dry, dry_run: false });
    const left = (JSON.parse(garret("cache", "log", `local:${cache}`, "--json")) as PushView[]).map((l) => l.store_path).sort();
    expect(left).toEqual([B.top, B.dep, D.top, D.dep].sort());

    deleteFromStore(A.top, B.top, C.top, D.top);
    deleteFromStore(A.dep, B.dep, C.dep, D.dep);
    const sub = `${server.url}/${cache}`;
    for (const p of [A.top, A.dep, C.top, C.dep]) expect(substitute(sub, publicKey, p, netrc).code).not.toBe(0);
    for (const p of [B.top, D.top]) expect(outcome(substitute(sub, publicKey, p, netrc))).toBe("ok");
    expect(run(["nix-store", "--check-validity", B.dep]).code).toBe(0);
  });

  test("purge wants exactly one selector and a readable --since", () => {
    const none = run(garretCmd("cache", "purge", `local:${cache}`), { env: clients.admin });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("give exactly one of --uploaded-by and --token-id");
    const since = JSON.parse(garret("cache", "purge", `local:${cache}`, "--uploaded-by", "bob", "--since", "2099-01-01T00:00:00Z", "--dry-run", "--json")) as PurgeAnswer;
    expect(since.purged).toEqual([]);
    const recent = JSON.parse(garret("cache", "purge", `local:${cache}`, "--uploaded-by", "bob", "--since", "1h", "--dry-run", "--json")) as PurgeAnswer;
    expect(recent.purged).toEqual([B.top, B.dep].sort());
  });

  test("garret audit lists the admin actions with actor and time, no secrets", () => {
    const entries = JSON.parse(runOk(garretCmd("audit", "--data", server.dataDir, "--json"))) as
      { at: string; actor: string; action: string; target: string; detail: string | null }[];
    const actions = entries.map((e) => `${e.actor} ${e.action} ${e.target}`);
    expect(actions).toContain(`root cache.create ${cache}`);
    expect(actions).toContain(`root cache.purge ${cache}`);
    // garret token create (alice's, bob's, eve's tokens) is recorded too, by the tokens registry
    expect(entries.filter((e) => e.action === "token.mint").length).toBeGreaterThanOrEqual(3);
    expect(actions.filter((a) => a.includes("cache.purge")).length).toBe(1); // dry runs are not actions
    const purge = entries.find((e) => e.action === "cache.purge")!;
    expect(purge.detail).toBe("uploaded_by=alice: 3 path(s), 1 dependant(s)");
    for (const e of entries) expect(Number.isNaN(Date.parse(e.at))).toBe(false);
    expect(runOk(garretCmd("audit", "--data", server.dataDir))).toContain(`root  cache.purge  ${cache}`);
  });

  test("--all-caches purges the uploader in every cache the caller may configure", () => {
    const other = `prov-b-${uniqueTag()}`;
    garret("cache", "create", `local:${other}`);
    const E = buildClosure(uniqueTag());
    expect(JSON.parse(runOk(garretCmd("push", `local:${other}`, E.top, "--json"), { env: clients.bob }))).toMatchObject({ uploaded: 2 });
    const dry = JSON.parse(garret("cache", "purge", "local", "--all-caches", "--uploaded-by", "bob", "--dry-run", "--json")) as PurgeAllAnswer;
    expect(Object.keys(dry.caches).sort()).toEqual([cache, other].sort());
    expect(dry.caches[cache]!.purged).toEqual([B.top, B.dep].sort());
    expect(dry.caches[other]!.purged).toEqual([E.top, E.dep].sort());
    const done = JSON.parse(garret("cache", "purge", "local", "--all-caches", "--uploaded-by", "bob", "--json")) as PurgeAllAnswer;
    expect(done.caches[cache]!.purged).toEqual(dry.caches[cache]!.purged);
    expect(done.caches[other]!.purged).toEqual(dry.caches[other]!.purged);
    for (const c of [cache, other]) {
      expect(JSON.parse(garret("cache", "log", `local:${c}`, "--uploaded-by", "bob", "--json"))).toEqual([]);
    }
    // carol's job stays
    expect(JSON.parse(garret("cache", "log", `local:${cache}`, "--json")).length).toBe(2);
  });
});
