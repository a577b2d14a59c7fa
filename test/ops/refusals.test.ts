/**
 * Issue 17: a 401/403 request log line says why: expired, revoked, bad signature, malformed, or
 * which permission it lacks on which cache. The token itself is never in the log.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { requireNix, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";

requireNix();

let server: TestServer;
let stranger: TestServer;
let root: string;
const cache = `why-${uniqueTag()}`;

beforeAll(async () => {
  server = await startServer({ env: { GARRET_LOG_FORMAT: "json" } });
  // Another server: its tokens carry a signature made with another secret.
  stranger = await startServer({ dataDir: tempDir("garret-data-") });
  root = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  await createCache(server.url, root, cache);
});

afterAll(async () => {
  await server?.stop();
  await stranger?.stop();
});

interface Entry { id: string; status: number; why: string | null; sub: string | null }

const upload = (token: string) => fetch(`${server.url}/_api/v1/upload-path`, {
  method: "PUT", body: "", headers: { authorization: `Bearer ${token}`, "x-attic-nar-info": JSON.stringify({ cache }) },
});

/** The log line of the answer `res` (by its X-Request-Id); the log is written once per event-loop turn. */
async function lineOf(res: Response): Promise<Entry> {
  const id = res.headers.get("x-request-id")!;
  for (let i = 0; i < 200; i++) {
    const hit = server.log().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Entry).find((e) => e.id === id);
    if (hit) return hit;
    await Bun.sleep(20);
  }
  throw new Error(`no log line for request ${id}`);
}

const jtiOf = (token: string): string => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti;

test("a bad signature, a malformed token, an expired one: each 401 line says which", async () => {
  const foreign = mintToken(stranger.dataDir, "--pull", "*", "--push", "*");
  const expired = mintToken(server.dataDir, "--push", "*", "--validity", "1s");
  const sig = await upload(foreign);
  expect(sig.status).toBe(401);
  expect((await lineOf(sig)).why).toBe("token rejected: token has a bad signature (signed with another secret or key: another server, or an older secret)");
  const junk = await upload("garbage.token.here");
  expect(junk.status).toBe(401);
  expect((await lineOf(junk)).why).toBe("token rejected: token is malformed (not a JWT)");
  // Expiry is checked to the second: wait until it has surely passed.
  await Bun.sleep(2100);
  const old = await upload(expired);
  expect(old.status).toBe(401);
  expect((await lineOf(old)).why).toBe("token rejected: token has expired");
  for (const t of [foreign, expired]) expect(server.log()).not.toContain(t.split(".")[2]!);
});

test("a revoked token's line says revoked; a token lacking push names the permission and the cache", async () => {
  const doomed = mintToken(server.dataDir, "--pull", "*", "--push", "*");
  runOk(garretCmd("token", "revoke", jtiOf(doomed), "--data", server.dataDir));
  let res = await upload(doomed);
  // The server reads revocations from its database; wait for it to see this one.
  for (let i = 0; i < 300 && res.status !== 401; i++) {
    await Bun.sleep(50);
    res = await upload(doomed);
  }
  expect(res.status).toBe(401);
  expect((await lineOf(res)).why).toBe("token rejected: token has been revoked");

  const puller = mintToken(server.dataDir, "--pull", "*");
  const denied = await upload(puller);
  expect(denied.status).toBe(403);
  expect(await lineOf(denied)).toMatchObject({ status: 403, sub: "test", why: `Your token lacks push on ${cache}.` });
  for (const t of [doomed, puller]) expect(server.log()).not.toContain(t.split(".")[2]!);
});
