/**
 * Issue 16, acceptance 3 across replicas: two servers on one PostgreSQL database and one storage
 * (the operator's HS256 secret shared through GARRET_TOKEN_HS256_SECRET_BASE64). A token revoked
 * through either's settings is refused by both within 5 s; another token keeps working on both.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { freshPgDatabase } from "../helpers/pg.ts";
import { runOk, tempDir } from "../helpers/nix.ts";
import { garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { claimsOf } from "../helpers/tokens.ts";

let a: TestServer;
let b: TestServer;
let db: string;
const env = { GARRET_TOKEN_HS256_SECRET_BASE64: Buffer.alloc(40, 9).toString("base64"), GARRET_STORAGE_PATH: tempDir("garret-shared-") };

beforeAll(async () => {
  db = await freshPgDatabase();
  a = await startServer({ args: ["--database-url", db], env });
  b = await startServer({ args: ["--database-url", db], env });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
});

const mint = (): string => runOk(garretCmd("token", "create", "--data", a.dataDir, "--database-url", db, "--sub", "r",
  "--validity", "1h", "--pull", "*", "--create-cache", "*"), { env: { ...process.env, ...env } }).trim();
const status = async (s: TestServer, token: string) =>
  (await fetch(`${s.url}/_api/v1/cache-config/nope-${Math.random().toString(36).slice(2)}`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: false }),
  })).status;

test("revoked on one database: refused by both replicas within 5 s", async () => {
  const victim = mint();
  const other = mint();
  expect([await status(a, victim), await status(b, victim)]).toEqual([200, 200]);
  runOk(garretCmd("token", "revoke", claimsOf(victim).jti as string, "--data", b.dataDir, "--database-url", db), { env: { ...process.env, ...env } });
  const start = Date.now();
  let seen: number[] = [];
  while (Date.now() - start < 5000) {
    seen = [await status(a, victim), await status(b, victim)];
    if (seen.every((s) => s === 401)) break;
    await Bun.sleep(200);
  }
  expect(seen).toEqual([401, 401]);
  expect([await status(a, other), await status(b, other)]).toEqual([200, 200]);
});
