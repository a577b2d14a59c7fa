/*
 * What `garret login` asks the server before it saves anything: is the URL a garret server (or an
 * Attic-compatible one), is it the server's root rather than a cache's address, and does it accept
 * the token. Each refusal is one line saying what was wrong.
 */
import type { WhoamiAnswer } from "../api/garret.ts";
import { ATTIC_PATHS } from "../api/attic.ts";
import { ApiClient, ApiError } from "./api.ts";

export type ServerCheck =
  /** A garret server: `whoami` says what the token is (token null: anonymous). */
  | { kind: "garret"; endpoint: string; whoami: WhoamiAnswer; cacheInUrl: string | null }
  /** An Attic-compatible server without `whoami`: reachable, the token could not be checked. */
  | { kind: "attic"; endpoint: string; cacheInUrl: string | null };

/** The server said no, or is not a cache server: nothing is saved. */
export class LoginRefused extends Error {}

type Probe = { whoami: WhoamiAnswer } | { other: string };

/** Asks `whoami` once (no retries: a wrong URL should fail now). Network failures and a refused token throw. */
async function probe(endpoint: string, token: string | undefined, caFile: string | undefined): Promise<Probe> {
  const api = new ApiClient({ endpoint, token }, { caFile });
  try {
    const answer = await api.whoami(false);
    if (answer && (answer as { server?: unknown }).server === "garret") return { whoami: answer };
    return { other: "answered 200 but not as garret does" };
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.status === 0) throw new LoginRefused(err.message);
    if (err.status === 401) throw new LoginRefused(`${endpoint} refused the token: ${err.message.replace(/\.$/, "")}`);
    return { other: `answered ${err.status}${err.error.startsWith("HTTP") ? "" : ` ${err.error}`}` };
  }
}

/** An Attic server answers its cache-config route in JSON with an error name, even for a cache that is not there. */
async function speaksAttic(endpoint: string, token: string | undefined, caFile: string | undefined): Promise<boolean> {
  const api = new ApiClient({ endpoint, token }, { caFile });
  try {
    await api.json("GET", ATTIC_PATHS.cacheConfig("garret-login-check"));
    return true;
  } catch (err) {
    return err instanceof ApiError && err.status !== 0 && !err.error.startsWith("HTTP");
  }
}

/** The URL without its last path segment, when it has one (`http://host/mycache` -> `http://host`). */
function parentOf(endpoint: string): { parent: string; last: string } | null {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return null; // not a URL: the probe has said what it could
  }
  const segments = url.pathname.split("/").filter(Boolean);
  if (segments.length === 0) return null;
  const last = segments.pop()!;
  url.pathname = segments.join("/");
  return { parent: url.toString().replace(/\/+$/, ""), last: decodeURIComponent(last) };
}

/**
 * Checks `endpoint` and `token` against the server. A URL ending in a cache name (what Nix's
 * substituters hold: http://host:8080/mycache) is corrected to the server's root, reported as
 * `cacheInUrl`; a server under a path prefix (a proxy's /garret) answers at the given URL and is kept.
 */
export async function checkServer(endpoint: string, token: string | undefined, caFile?: string): Promise<ServerCheck> {
  const first = await probe(endpoint, token, caFile);
  if ("whoami" in first) return { kind: "garret", endpoint, whoami: first.whoami, cacheInUrl: null };
  // Asked at most once, and only when the answer is needed.
  let atticHere: Promise<boolean> | null = null;
  const hereSpeaksAttic = () => (atticHere ??= speaksAttic(endpoint, token, caFile));
  const up = parentOf(endpoint);
  if (up) {
    const second = await probe(up.parent, token, caFile).catch(() => null);
    if (second && "whoami" in second) return { kind: "garret", endpoint: up.parent, whoami: second.whoami, cacheInUrl: up.last };
    if (await speaksAttic(up.parent, token, caFile) && !(await hereSpeaksAttic())) {
      return { kind: "attic", endpoint: up.parent, cacheInUrl: up.last };
    }
  }
  if (await hereSpeaksAttic()) return { kind: "attic", endpoint, cacheInUrl: null };
  throw new LoginRefused(`${endpoint} is not a garret server (GET /_api/v1/whoami ${first.other}); give the server's root URL, as garret serve prints it`);
}
