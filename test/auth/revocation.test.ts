/**
 * Issue 16, acceptance 3, and issue 17: the token registry. `garret token create` gives every token
 * an id (jti) and records it (never the token); `token list --json` shows it; `token revoke ID` or
 * `--sub SUB` makes the server refuse the token on every endpoint (uploads included, public reads
 * too) within 5 s, read from the shared database; other tokens keep working. `token create` where
 * there is no server data refuses, naming --data DIR / --config FILE.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { buildExpr, requireNix, run, runOk, SH, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { uploadPath } from "../helpers/api.ts";
import { claimsOf } from "../helpers/tokens.ts";

requireNix();

let server: TestServer;
let admin: string;
const ALL = ["--pull", "*", "--push", "*", "--create-cache", "*"];

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, ...ALL);
  await createCache(server.url, admin, "rv-private");
  await createCache(server.url, admin, "rv-public", { is_public: true });
});
afterAll(async () => {
  await server?.stop();
});

interface Listed { id: string; sub: string; expires_at: string; revoked: boolean; permissions: Record<string, unknown> }
const list = (): Listed[] => JSON.parse(runOk(garretCmd("token", "list", "--json", "--data", server.dataDir)));

/** Every endpoint kind a token can reach, with the status each answers. */
async function statuses(token: string): Promise<number[]> {
  const auth = { authorization: `Bearer ${token}` };
  const path = buildExpr(`let ${SH} in sh "rv-${uniqueTag()}" "echo $RANDOM > $out"`);
  return [
    (await fetch(`${server.url}/_api/v1/cache-config/rv-private`, { headers: auth })).status,
    (await fetch(`${server.url}/rv-public/nix-cache-info`, { headers: auth })).status,
    (await fetch(`${server.url}/_api/v1/get-missing-paths`, {
      method: "POST", headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ cache: "rv-private", store_path_hashes: ["0".repeat(32)] }),
    })).status,
    (await uploadPath(server.url, token, "rv-private", path)).status,
  ];
}

async function refusedWithin5s(token: string): Promise<number[]> {
  const start = Date.now();
  let last: number[] = [];
  while (Date.now() - start < 5000) {
    last = await statuses(token);
    if (last.every((s) => s === 401)) return last;
    await Bun.sleep(200);
  }
  return last;
}

describe("the registry", () => {
  test("every minted token has an id; list shows id, sub, expires_at, revoked, never the token", () => {
    const token = mintToken(server.dataDir, "--pull", "rv-*");
    const jti = claimsOf(token).jti as string;
    expect(jti).toMatch(/^[0-9a-f-]{36}$/);
    const row = list().find((r) => r.id === jti)!;
    expect(row).toMatchObject({ sub: "test", revoked: false, permissions: { "rv-*": { r: 1 } } });
    expect(Date.parse(row.expires_at)).toBeGreaterThan(Date.now());
    expect(runOk(garretCmd("token", "list", "--json", "--data", server.dataDir))).not.toContain(token);
    expect(runOk(garretCmd("token", "list", "--data", server.dataDir))).toContain(jti);
  });

  test("--validity 15m", () => {
    const token = mintToken(server.dataDir, "--validity", "15m", "--pull", "rv-*");
    const c = claimsOf(token) as { exp: number; iat: number };
    expect(c.exp - c.iat).toBe(900);
  });
});

test("revoke ID: refused on every endpoint within 5 s; another token keeps working", async () => {
  const victim = mintToken(server.dataDir, ...ALL);
  const other = mintToken(server.dataDir, ...ALL);
  expect(await statuses(victim)).toEqual([200, 200, 200, 200]);
  runOk(garretCmd("token", "revoke", claimsOf(victim).jti as string, "--data", server.dataDir));
  expect(await refusedWithin5s(victim)).toEqual([401, 401, 401, 401]);
  expect(await statuses(other)).toEqual([200, 200, 200, 200]);
  expect(list().find((r) => r.id === claimsOf(victim).jti)!.revoked).toBe(true);
});

test("revoke --sub: also a token minted elsewhere without an id; another sub keeps working", async () => {
  const secret = Buffer.from(readFileSync(join(server.dataDir, "token-secret"), "utf8").trim(), "base64");
  const foreign = (sub: string) => new SignJWT({ "https://jwt.attic.rs/v1": { caches: { "*": { r: 1, w: 1 } } } })
    .setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime("1h").sign(new Uint8Array(secret));
  const ci = await foreign("ci-bot");
  const keeps = await foreign("human");
  expect(await statuses(ci)).toEqual([200, 200, 200, 200]);
  runOk(garretCmd("token", "revoke", "--sub", "ci-bot", "--data", server.dataDir));
  expect(await refusedWithin5s(ci)).toEqual([401, 401, 401, 401]);
  expect(await statuses(keeps)).toEqual([200, 200, 200, 200]);
});

test("revoking an unknown id is one line, exit 1", () => {
  const r = run(garretCmd("token", "revoke", "no-such-id", "--data", server.dataDir));
  expect(r.code).toBe(1);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
});

test("token create with no server data refuses and names --data DIR / --config FILE", () => {
  const empty = tempDir("garret-nodata-");
  const r = run(garretCmd("token", "create", "--sub", "x", "--validity", "1d", "--pull", "*"), { cwd: empty });
  expect(r.code).not.toBe(0);
  expect(r.stdout).toBe("");
  expect(r.stderr).toContain("--data DIR");
  expect(r.stderr).toContain("--config FILE");
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
});
