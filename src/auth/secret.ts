import { chmod, readFile, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { TokenAuthority, type TokenSettings } from "./token.ts";
import { OidcVerifier, type OidcTrust } from "./oidc.ts";

export const SECRET_FILE = "token-secret";

/**
 * Loads the HS256 token secret from the data dir, creating it (64 random bytes, base64, mode 0600)
 * on first use. The secret never appears in logs or command output.
 */
export async function loadOrCreateTokenSecret(dataDir: string): Promise<string> {
  return (await tokenSecret(dataDir)).secret;
}

/** Like loadOrCreateTokenSecret, and says whether this call created it (a first run). */
export async function tokenSecret(dataDir: string): Promise<{ secret: string; created: boolean }> {
  const path = join(dataDir, SECRET_FILE);
  try {
    return { secret: (await readFile(path, "utf8")).trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const secret = randomBytes(64).toString("base64");
  try {
    await writeFile(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return { secret: (await readFile(path, "utf8")).trim(), created: false };
    throw err;
  }
  await chmod(path, 0o600);
  return { secret, created: true };
}

/**
 * The server's token authority from its `[auth]` settings: the operator's HS256 secret (an Attic
 * server's `token-hs256-secret-base64`) or else the data dir's generated one, RS256 keys, bound
 * issuer/audiences, and OIDC issuers. `created` is true on a first run with a generated secret.
 */
export async function openTokenAuthority(
  dataDir: string,
  auth: TokenSettings & { hs256SecretBase64?: string; oidc?: OidcTrust[] },
): Promise<{ tokens: TokenAuthority; created: boolean }> {
  const { secret, created } = auth.hs256SecretBase64
    ? { secret: auth.hs256SecretBase64, created: false }
    : await tokenSecret(dataDir);
  const tokens = new TokenAuthority(secret, auth);
  if (auth.oidc?.length) tokens.extra = new OidcVerifier(auth.oidc).verify;
  return { tokens, created };
}
