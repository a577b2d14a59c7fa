import { InvalidToken } from "../auth/token.ts";
import { RejectedToken, type Caller } from "../cache/access.ts";
import type { Garret } from "../cache/context.ts";
import type { RequestOrigin } from "../cache/caches.ts";
import { noteCaller } from "./request-log.ts";

/** The token from `Authorization: Bearer <jwt>` or Basic auth with the token as password (netrc). */
export function tokenFromHeader(header: string | null): string | null {
  if (!header) return null;
  // Every request of a push sends one: the usual spellings skip the regular-expression split.
  const [scheme, value] = PLAIN_CREDENTIALS.test(header) ? splitAtSpace(header) : header.split(/\s+/, 2);
  if (!scheme || !value) return null;
  if (scheme.toLowerCase() === "bearer") return value;
  if (scheme.toLowerCase() === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const password = colon >= 0 ? decoded.slice(colon + 1) : "";
    return password || null;
  }
  return null;
}

/** `Bearer x` / `Basic x` with one space and no other whitespace: split as the general case would. */
const PLAIN_CREDENTIALS = /^[A-Za-z]+ \S+$/;

function splitAtSpace(header: string): [string, string] {
  const space = header.indexOf(" ");
  return [header.slice(0, space), header.slice(space + 1)];
}

/**
 * Verifies the caller's token. A token that fails verification is not an error here: the domain
 * serves reads of public caches to it anonymously and refuses everything else (see RejectedToken).
 */
export async function callerOf(g: Garret, request: Request): Promise<Caller> {
  const caller = await verifyCaller(g, request);
  noteCaller(request, caller);
  return caller;
}

async function verifyCaller(g: Garret, request: Request): Promise<Caller> {
  const token = tokenFromHeader(request.headers.get("authorization"));
  if (!token) return null;
  try {
    const claims = await g.tokens.verify(token);
    // Outside the verified-token memory: a revocation must stop a token already seen.
    if (g.revocations && await g.revocations.isRevoked(claims)) return new RejectedToken("token has been revoked", false);
    return claims;
  } catch (err) {
    if (err instanceof InvalidToken) return new RejectedToken(err.message);
    throw err;
  }
}

/** A Host header value: a DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** The origin the client reached (from a well-formed Host; https when a proxy says so), or null. */
export function originOf(request: Request): RequestOrigin | null {
  const host = request.headers.get("host");
  if (!host || host.length > 300 || !HOST.test(host)) return null;
  const proto = request.headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  return `${proto === "https" ? "https" : "http"}://${host}` as RequestOrigin;
}
