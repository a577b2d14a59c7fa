import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";

const ALL = { "https://jwt.attic.rs/v1": { caches: { "*": { r: 1, w: 1 } } } };

/** A token signed with the server's own secret that expired an hour ago. */
export async function expiredToken(dataDir: string): Promise<string> {
  const secret = Buffer.from(readFileSync(join(dataDir, "token-secret"), "utf8").trim(), "base64");
  const past = Math.floor(Date.now() / 1000) - 3600;
  return new SignJWT(ALL)
    .setProtectedHeader({ alg: "HS256" }).setSubject("old").setIssuedAt(past - 60).setExpirationTime(past)
    .sign(new Uint8Array(secret));
}

/** A well-formed token signed with a key the server does not know. */
export async function forgedToken(): Promise<string> {
  return new SignJWT(ALL).setProtectedHeader({ alg: "HS256" }).setSubject("mallory").setExpirationTime("1h")
    .sign(new Uint8Array(64).fill(7));
}

/** The claims of a token, unverified (for checking what a command minted). */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8"));
}
