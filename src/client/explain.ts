/*
 * A server's refusal as the one line a user can act on: which cache on which server, which
 * permission the token lacked and how to get it, the cache they probably meant. The server's own
 * words ("The requested cache does not exist.") name neither the alias nor the cache.
 */
import { nearest } from "../suggest.ts";

/** What a call needed on its cache, in the server's permission names (src/auth/permissions.ts). */
export type Need = "pull" | "push" | "delete" | "createCache" | "configureCache" | "configureCacheRetention" | "destroyCache" | "any";

const VERBS: Record<Exclude<Need, "any">, [verb: string, flag: string]> = {
  pull: ["pull from", "--pull"],
  push: ["push to", "--push"],
  delete: ["delete paths from", "--delete"],
  createCache: ["create cache", "--create-cache"],
  configureCache: ["configure", "--configure-cache"],
  configureCacheRetention: ["change the retention or quota of", "--configure-cache-retention"],
  destroyCache: ["destroy", "--destroy-cache"],
};

export interface Refusal {
  status: number;
  error: string;
  message: string;
}

export interface RefusalContext {
  /** The alias the user typed (`local` in local:foo), or the server's URL when there is none. */
  server: string;
  alias: string | null;
  cache: string;
  need: Need;
  hasToken: boolean;
  /** The caches the token can see, when the server lists them (GET /_api/v1/caches). */
  visible: string[] | null;
}

/** The explained line, or null when the server's own message is as good as it gets. */
export function explainRefusal(r: Refusal, c: RefusalContext): string | null {
  const target = c.alias ? `${c.alias}:${c.cache}` : c.cache;
  const where = c.alias ? `server ${c.alias}` : c.server;
  if (r.error === "NoSuchCache") {
    const near = c.visible ? nearest(c.cache, c.visible.filter((n) => n !== c.cache)) : null;
    if (near) return `cache ${target} does not exist on ${where} (did you mean ${c.alias ? `${c.alias}:` : ""}${near}?)`;
    const hidden = c.hasToken ? "or your token may not see it" : "or it is private and you have no token";
    const list = c.alias ? `; garret cache list ${c.alias} shows the caches you can see` : "";
    return `cache ${target} does not exist on ${where} (${hidden})${list}`;
  }
  if (r.error === "Forbidden") {
    // The server says which permission was missing when it knows ("Your token lacks push on foo.").
    const said = /lacks (\w+) on /.exec(r.message)?.[1];
    const need = (said && Object.hasOwn(VERBS, said) ? said : c.need) as Need;
    if (need === "any") return null;
    const [verb, flag] = VERBS[need];
    return `your token for ${c.alias ?? c.server} may not ${verb} ${c.cache} (it needs a token minted with ${flag} ${c.cache} or a pattern matching it)`;
  }
  if (r.error === "Unauthorized") {
    const login = c.alias ? `; run garret login ${c.alias} URL TOKEN with a valid token` : "";
    if (!c.hasToken) return `${target} needs a token and ${c.alias ?? "this client"} has none${login}`;
    return `${where} refused the token: ${r.message.replace(/\.$/, "")}${login}`;
  }
  return null;
}

/** A failed connection's cause in words (Bun's own: "Unable to connect. Is the computer able to access the url?"). */
export function connectionProblem(err: unknown, host: string): string {
  const e = err as { code?: string; name?: string; message?: string };
  switch (e?.code) {
    case "ECONNREFUSED":
    case "ConnectionRefused":
      return "connection refused (is garret serve running there, on that port?)";
    case "ENOTFOUND":
      return `no such host ${host}`;
    case "ECONNRESET":
    case "ConnectionClosed":
      return "the server closed the connection";
    case "ETIMEDOUT":
      return "the connection timed out";
    default:
      if (e?.name === "TimeoutError") return "no answer in time";
      return e?.message ?? String(err);
  }
}
