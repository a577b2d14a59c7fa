import { ApiClient } from "../client/api.ts";
import { ClientConfigError, loadClientConfig, type ClientConfig, type ServerEntry } from "../client/config.ts";
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

/** The client config, with a broken file as one CLI line. */
async function clientConfig(): Promise<ClientConfig> {
  try {
    return await loadClientConfig();
  } catch (err) {
    if (err instanceof ClientConfigError) throw new CliError(err.message);
    throw err;
  }
}

/** The server saved under `alias` (or the default one), or a line naming the known aliases. */
export async function savedServer(alias: string | undefined): Promise<{ alias: string; server: ServerEntry }> {
  const config = await clientConfig();
  const name = alias ?? config.defaultServer;
  if (!name) throw new UsageError("no server alias given and no default server; run garret login ALIAS URL TOKEN first");
  const server = config.servers[name];
  if (!server) throw new CliError(unknownAlias(name, Object.keys(config.servers)));
  return { alias: name, server };
}

/** Resolves `ALIAS:CACHE` to an API client for that server. */
export async function resolveRemote(spec: string | undefined, opts: { caFile?: string } = {}): Promise<Remote> {
  const config = await clientConfig();
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
