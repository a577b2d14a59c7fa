/**
 * Issue 16, acceptance 1: tokens an operator brings from Attic. An Attic-format token (atticadm's
 * claims: sub, exp, nbf, no iat) signed with the operator's secret from `[auth] hs256-secret-base64`
 * or GARRET_TOKEN_HS256_SECRET_BASE64 (a short one: Attic takes any length) works; RS256 with PEM
 * keys works; `bound-issuer` and `bound-audiences` are enforced.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportPKCS8, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { tempDir } from "../helpers/nix.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

const ALL = { "https://jwt.attic.rs/v1": { caches: { "*": { r: 1, w: 1, cc: 1 } } } };

/** As `atticadm make-token` mints: exp, nbf, sub, no iat. */
function atticToken(extra: { iss?: string; aud?: string | string[] } = {}): SignJWT {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ ...ALL, ...extra }).setSubject("ops").setNotBefore(now - 10).setExpirationTime(now + 3600);
  return jwt;
}

async function createStatus(url: string, token: string, name: string): Promise<number> {
  const res = await fetch(`${url}/_api/v1/cache-config/${name}`, {
    method: "POST", headers: { authorization: `bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
  });
  return res.status;
}

async function serverWith(toml: string, env: Record<string, string> = {}): Promise<TestServer> {
  const dir = tempDir("garret-auth-");
  const config = join(dir, "garret.toml");
  writeFileSync(config, toml);
  const s = await startServer({ args: ["--config", config], env });
  servers.push(s);
  return s;
}

// 5 bytes: shorter than garret's own generated secret, accepted as Attic accepts it.
const SHORT = Buffer.from("hello").toString("base64");

describe("an operator's HS256 secret", () => {
  test("from [auth] hs256-secret-base64", async () => {
    const s = await serverWith(`[auth]\nhs256-secret-base64 = "${SHORT}"\n`);
    const good = await atticToken().setProtectedHeader({ alg: "HS256" }).sign(Buffer.from("hello"));
    expect(await createStatus(s.url, good, "from-config")).toBe(200);
    const other = await atticToken().setProtectedHeader({ alg: "HS256" }).sign(Buffer.from("other"));
    expect(await createStatus(s.url, other, "from-config-2")).toBe(401);
  });

  test("from GARRET_TOKEN_HS256_SECRET_BASE64", async () => {
    const key = Buffer.alloc(48, 3);
    const s = await serverWith("", { GARRET_TOKEN_HS256_SECRET_BASE64: key.toString("base64") });
    const good = await atticToken().setProtectedHeader({ alg: "HS256" }).sign(key);
    expect(await createStatus(s.url, good, "from-env")).toBe(200);
  });
});

test("RS256 tokens with PEM keys from [auth]; an HS256 token is then refused", async () => {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const dir = tempDir("garret-rsa-");
  writeFileSync(join(dir, "public.pem"), await exportSPKI(publicKey));
  const pem = JSON.stringify(await exportPKCS8(privateKey));
  const s = await serverWith(`[auth]\nrs256-public-key = "${join(dir, "public.pem")}"\nrs256-secret-key = ${pem}\n`);
  const good = await atticToken().setProtectedHeader({ alg: "RS256" }).sign(privateKey);
  expect(await createStatus(s.url, good, "rsa")).toBe(200);
  const hs = await atticToken().setProtectedHeader({ alg: "HS256" }).sign(Buffer.alloc(32, 1));
  expect(await createStatus(s.url, hs, "rsa-2")).toBe(401);
});

test("bound-issuer and bound-audiences are enforced", async () => {
  const key = Buffer.alloc(32, 5);
  const s = await serverWith(`[auth]\nhs256-secret-base64 = "${key.toString("base64")}"\nbound-issuer = "https://cache.example"\nbound-audiences = ["garret", "ci"]\n`);
  const sign = (extra: { iss?: string; aud?: string | string[] }) => atticToken(extra).setProtectedHeader({ alg: "HS256" }).sign(key);
  expect(await createStatus(s.url, await sign({ iss: "https://cache.example", aud: "ci" }), "bound-ok")).toBe(200);
  expect(await createStatus(s.url, await sign({ aud: "ci" }), "bound-no-iss")).toBe(401);
  expect(await createStatus(s.url, await sign({ iss: "https://evil.example", aud: "ci" }), "bound-bad-iss")).toBe(401);
  expect(await createStatus(s.url, await sign({ iss: "https://cache.example" }), "bound-no-aud")).toBe(401);
  expect(await createStatus(s.url, await sign({ iss: "https://cache.example", aud: "other" }), "bound-bad-aud")).toBe(401);
});
