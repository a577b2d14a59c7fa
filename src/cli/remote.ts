import { ApiClient } from "../client/api.ts";
import { loadClientConfig } from "../client/config.ts";
import { CliError, UsageError } from "./errors.ts";

/** Resolves `ALIAS:CACHE` (or just `CACHE` with the default server) to an API client. */
export async function resolveRemote(spec: string | undefined): Promise<{ api: ApiClient; cache: string; alias: string }> {
  if (!spec) throw new UsageError("expected ALIAS:CACHE");
  const config = await loadClientConfig();
  const colon = spec.indexOf(":");
  const alias = colon >= 0 ? spec.slice(0, colon) : config.defaultServer;
  const cache = colon >= 0 ? spec.slice(colon + 1) : spec;
  if (!alias) throw new UsageError(`no server alias in ${JSON.stringify(spec)} and no default server; run garret login first`);
  if (!cache) throw new UsageError(`no cache name in ${JSON.stringify(spec)}`);
  const server = config.servers[alias];
  if (!server) throw new CliError(`unknown server alias ${JSON.stringify(alias)}; run: garret login ${alias} URL TOKEN`);
  return { api: new ApiClient(server), cache, alias };
}
