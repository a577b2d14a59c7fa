/**
 * Issue 16, acceptance 4: a CI-style flow. A long-lived token is exchanged (garret token exchange)
 * for a 15-minute one scoped to one cache, which pushes there with garret push and nowhere else; a
 * short-lived exchanged token is refused once expired. An OIDC token from an issuer this test runs
 * (discovery + JWKS on Bun.serve) pushes only where `[[auth.oidc]]`'s mapping allows.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { buildClosure, requireNix, run, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { uploadPath } from "../helpers/api.ts";
import { claimsOf } from "../helpers/tokens.ts";

requireNix();

const { publicKey, privateKey } = await generateKeyPair("RS256");
const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
const issuer: ReturnType<typeof Bun.serve> = Bun.serve({
  port: 0, hostname: "127.0.0.1",
  fetch(req): Response {
    const path = new URL(req.url).pathname;
    if (path === "/.well-known/openid-configuration") {
      return Response.json({ issuer: issuerUrl, jwks_uri: `${issuerUrl}/jwks` });
    }
    if (path === "/jwks") return Response.json({ keys: [jwk] });
    return new Response("not found", { status: 404 });
  },
});
const issuerUrl: string = `http://127.0.0.1:${issuer.port}`;

let server: TestServer;
let admin: string;
let env: Record<string, string>;

beforeAll(async () => {
  const dir = tempDir("garret-ci-");
  const config = join(dir, "garret.toml");
  writeFileSync(config, `
[[auth.oidc]]
issuer = "${issuerUrl}"
audience = "garret"
[[auth.oidc.rules]]
repository = "org/app"
ref = "refs/heads/main"
push = ["oidc-main"]
pull = ["oidc-*"]
`);
  server = await startServer({ args: ["--config", config] });
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  for (const c of ["ci-cache", "ci-other", "oidc-main", "oidc-other"]) await createCache(server.url, admin, c);
  env = { XDG_CONFIG_HOME: tempDir("garret-client-"), XDG_STATE_HOME: tempDir("garret-state-"), GARRET_RETRY_BASE_MS: "50" };
  runOk(garretCmd("login", "local", server.url, admin), { env });
});

afterAll(async () => {
  await server?.stop();
  issuer.stop(true);
});

describe("token exchange", () => {
  test("a 15-minute token for one cache pushes there with garret push, and nowhere else", () => {
    const short = runOk(garretCmd("token", "exchange", "local", "--validity", "15m", "--caches", "ci-cache"), { env }).trim();
    const c = claimsOf(short) as { exp: number; iat: number; jti: string; sub: string; "https://jwt.attic.rs/v1": { caches: unknown } };
    expect(c.exp - c.iat).toBe(900);
    expect(c.sub).toBe("test");
    expect(c.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(c["https://jwt.attic.rs/v1"].caches).toEqual({ "ci-cache": { r: 1, w: 1, cc: 1 } });
    // The registry knows it.
    expect(runOk(garretCmd("token", "list", "--json", "--data", server.dataDir))).toContain(c.jti);

    const ciEnv = { ...env, XDG_CONFIG_HOME: tempDir("garret-ci-client-") };
    runOk(garretCmd("login", "ci", server.url, short), { env: ciEnv });
    const { top } = buildClosure(uniqueTag());
    const pushed = JSON.parse(runOk(garretCmd("push", "ci:ci-cache", "--json", top), { env: ciEnv }));
    expect(pushed.uploaded).toBe(2);
    const refused = run(garretCmd("push", "ci:ci-other", "--json", top), { env: ciEnv });
    expect(refused.code).not.toBe(0);
  });

  test("never more than the caller's rights; an expired exchanged token is refused", async () => {
    const pullOnly = mintToken(server.dataDir, "--pull", "ci-*");
    const widened = run(garretCmd("token", "exchange", "local", "--validity", "1h", "--token", pullOnly), { env });
    const claims = claimsOf(widened.stdout.trim()) as { "https://jwt.attic.rs/v1": { caches: unknown } };
    expect(claims["https://jwt.attic.rs/v1"].caches).toEqual({ "ci-*": { r: 1 } });

    const brief = runOk(garretCmd("token", "exchange", "local", "--validity", "2s", "--caches", "ci-cache"), { env }).trim();
    const { top } = buildClosure(uniqueTag());
    await Bun.sleep(3000);
    const res = await uploadPath(server.url, brief, "ci-cache", top);
    expect(res.status).toBe(401);
  });

  test("a token cannot outlive the one it was exchanged from", async () => {
    const soon = mintToken(server.dataDir, "--validity", "60s", "--pull", "*");
    const longer = runOk(garretCmd("token", "exchange", "local", "--validity", "1y", "--token", soon), { env }).trim();
    expect((claimsOf(longer) as { exp: number }).exp).toBeLessThanOrEqual((claimsOf(soon) as { exp: number }).exp);
  });
});

describe("OIDC", () => {
  const oidcToken = (claims: Record<string, string>, aud = "garret") => new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: "k1" }).setIssuer(issuerUrl).setAudience(aud)
    .setSubject(`repo:${claims.repository}:ref:${claims.ref}`).setIssuedAt().setExpirationTime("10m").sign(privateKey);

  test("a token from the trusted issuer pushes only where its mapping allows", async () => {
    const main = await oidcToken({ repository: "org/app", ref: "refs/heads/main" });
    const { dep } = buildClosure(uniqueTag());
    expect((await uploadPath(server.url, main, "oidc-main", dep)).status).toBe(200);
    expect((await uploadPath(server.url, main, "oidc-other", dep)).status).toBe(403);
    expect((await uploadPath(server.url, main, "ci-cache", dep)).status).toBe(404);

    const branch = await oidcToken({ repository: "org/app", ref: "refs/heads/feature" });
    expect([403, 404]).toContain((await uploadPath(server.url, branch, "oidc-main", dep)).status);
    const wrongAud = await oidcToken({ repository: "org/app", ref: "refs/heads/main" }, "someone-else");
    expect((await uploadPath(server.url, wrongAud, "oidc-main", dep)).status).toBe(401);
  });

  test("an OIDC token can be exchanged for a garret token with at most its grant", async () => {
    const main = await oidcToken({ repository: "org/app", ref: "refs/heads/main" });
    const res = await fetch(`${server.url}/_api/v1/token-exchange`, {
      method: "POST", headers: { authorization: `Bearer ${main}`, "content-type": "application/json" },
      body: JSON.stringify({ validity_seconds: 300 }),
    });
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    expect((claimsOf(token) as { "https://jwt.attic.rs/v1": { caches: unknown } })["https://jwt.attic.rs/v1"].caches)
      .toEqual({ "oidc-*": { r: 1 }, "oidc-main": { r: 1, w: 1 } });
  });
});
