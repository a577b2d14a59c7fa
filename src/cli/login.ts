import { parseArgs } from "./args.ts";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { loadClientConfig, saveClientConfig, clientConfigPath } from "../client/config.ts";
import { interactive, promptHidden } from "./prompt.ts";
import { UsageError } from "./errors.ts";

/**
 * `garret login ALIAS URL [TOKEN]`: remembers a server. The token comes from the argument, else
 * GARRET_TOKEN, else a prompt on the terminal that does not echo (empty for anonymous access).
 */
export async function loginCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { "set-default": { type: "boolean" }, "ca-file": { type: "string" } },
  });
  const [alias, url, tokenArg, ...extra] = positionals;
  if (!alias || !url || extra.length > 0) throw new UsageError("usage: garret login ALIAS URL [TOKEN] [--set-default] [--ca-file FILE]");
  if (!/^[A-Za-z0-9_-]+$/.test(alias)) throw new UsageError("ALIAS may contain letters, digits, - and _");
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new UsageError(`URL must start with http:// or https://, got ${JSON.stringify(url)}`);
  const caFile = values["ca-file"] ? resolve(values["ca-file"]) : undefined;
  if (caFile && !existsSync(caFile)) throw new UsageError(`--ca-file ${caFile} does not exist`);

  let token: string | undefined = tokenArg ?? (process.env.GARRET_TOKEN || undefined);
  if (token === undefined && interactive()) {
    token = (await promptHidden(`Token for ${url} (input hidden; empty for anonymous access): `)).trim() || undefined;
  }
  const config = await loadClientConfig();
  const endpoint = url.replace(/\/+$/, "");
  const previous = config.servers[alias];
  config.servers[alias] = {
    endpoint,
    ...(token ? { token } : {}),
    ...(caFile ? { caFile } : previous?.endpoint === endpoint && previous.caFile ? { caFile: previous.caFile } : {}),
    // Caches remembered for `garret cache list` stay while the server stays the same.
    ...(previous?.endpoint === endpoint && previous.caches ? { caches: previous.caches } : {}),
  };
  if (!config.defaultServer || values["set-default"]) config.defaultServer = alias;
  await saveClientConfig(config);
  process.stdout.write(`✓ Saved server ${alias} (${endpoint}${token ? "" : ", no token"}) to ${clientConfigPath()}\n`);
}
