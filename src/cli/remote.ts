import { ApiClient } from "../client/api.ts";
import { ClientConfigError, loadClientConfig } from "../client/config.ts";
import { TlsConfigError } from "../client/tls.ts";
import { CliError, UsageError } from "./errors.ts";
import { nearest } from "../suggest.ts";

/** Flags every command that talks to a server accepts. */
export const REMOTE_OPTIONS = {
  "ca-file": { type: "string" },
} as const;

export interface Remote {
  api: ApiClient;
  cache: string;
  alias: string;
  /** The client config lists this cache for this server already (see rememberCache). */
  remembered: boolean;
}

/** Splits `ALIAS:CACHE` (or just `CACHE` with the default server). */
export function parseTarget(spec: string | undefined, defaultServer?: string): { alias: string; cache: string } {
  if (!spec) throw new UsageError("expected ALIAS:CACHE");
  const colon = spec.indexOf(":");
  const alias = colon >= 0 ? spec.slice(0, colon) : defaultServer;
  const cache = colon >= 0 ? spec.slice(colon + 1) : spec;
  if (!alias) throw new UsageError(`no server alias in ${JSON.stringify(spec)} and no default server; run garret login first`);
  if (!cache) throw new UsageError(`no cache name in ${JSON.stringify(spec)}`);
  return { alias, cache };
}

/** Resolves `ALIAS:CACHE` to an API client for that server. */
export async function resolveRemote(spec: string | undefined, opts: { caFile?: string } = {}): Promise<Remote> {
  let config;
  try {
    config = await loadClientConfig();
  } catch (err) {
    if (err instanceof ClientConfigError) throw new CliError(err.message);
    throw err;
  }
  const { alias, cache } = parseTarget(spec, config.defaultServer);
  const server = config.servers[alias];
  if (!server) throw new CliError(unknownAlias(alias, Object.keys(config.servers)));
  try {
    return { api: new ApiClient(server, { caFile: opts.caFile, alias }), cache, alias, remembered: server.caches?.includes(cache) ?? false };
  } catch (err) {
    if (err instanceof TlsConfigError) throw new CliError(err.message);
    throw err;
  }
}

/** An alias no server is saved under: the one meant, the known ones, or how to add it. */
export function unknownAlias(alias: string, known: string[]): string {
  const add = `garret login ${alias} URL TOKEN`;
  if (known.length === 0) return `unknown server alias ${JSON.stringify(alias)}: no servers are saved; run ${add}`;
  const near = nearest(alias, known);
  const list = `known: ${[...known].sort().join(", ")}`;
  return near ? `unknown server alias ${JSON.stringify(alias)}; did you mean ${JSON.stringify(near)}? (${list})`
    : `unknown server alias ${JSON.stringify(alias)} (${list}); to add it: ${add}`;
}
