import { loadClientConfig, saveClientConfig, clientConfigPath } from "../client/config.ts";
import { UsageError } from "./errors.ts";

export async function loginCommand(argv: string[]): Promise<void> {
  const positional = argv.filter((a) => !a.startsWith("--"));
  const [alias, url, tokenArg] = positional;
  if (!alias || !url) throw new UsageError("usage: garret login ALIAS URL [TOKEN]");
  if (!/^[A-Za-z0-9_-]+$/.test(alias)) throw new UsageError("ALIAS may contain letters, digits, - and _");
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new UsageError(`URL must start with http:// or https://, got ${JSON.stringify(url)}`);
  const token = tokenArg ?? process.env.GARRET_TOKEN;
  const config = await loadClientConfig();
  config.servers[alias] = { endpoint: url.replace(/\/+$/, ""), ...(token ? { token } : {}) };
  if (!config.defaultServer || argv.includes("--set-default")) config.defaultServer = alias;
  await saveClientConfig(config);
  process.stdout.write(`✓ Saved server ${alias} (${url}) to ${clientConfigPath()}\n`);
}
