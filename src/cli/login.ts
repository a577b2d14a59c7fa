import { parseArgs } from "./args.ts";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { ClientConfigError, loadClientConfig, saveClientConfig, clientConfigPath } from "../client/config.ts";
import { unknownAlias } from "./remote.ts";
import { interactive, promptHidden } from "./prompt.ts";
import { CliError, UsageError } from "./errors.ts";
import { checkServer, LoginRefused, type ServerCheck } from "../client/login-check.ts";
import { TlsConfigError } from "../client/tls.ts";
import type { WhoamiToken } from "../api/garret.ts";

/**
 * `garret login ALIAS URL [TOKEN]`: remembers a server. The token comes from the argument, else
 * GARRET_TOKEN, else a prompt on the terminal that does not echo (empty for anonymous access).
 * The URL and token are checked against the server first (--no-check skips it); a refusal saves nothing.
 */
export async function loginCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { "set-default": { type: "boolean" }, "ca-file": { type: "string" }, "no-check": { type: "boolean" } },
  });
  const [alias, url, tokenArg, ...extra] = positionals;
  if (!alias || !url || extra.length > 0) throw new UsageError("usage: garret login ALIAS URL [TOKEN] [--set-default] [--ca-file FILE]");
  if (!/^[A-Za-z0-9_-]+$/.test(alias)) throw new UsageError("ALIAS may contain letters, digits, - and _");
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new UsageError(`URL must start with http:// or https://, got ${JSON.stringify(url)}`);
  if (!URL.canParse(url)) throw new UsageError(`URL is not a valid URL: ${JSON.stringify(url)} (e.g. http://cache.example.com:8080)`);
  const caFile = values["ca-file"] ? resolve(values["ca-file"]) : undefined;
  if (caFile && !existsSync(caFile)) throw new UsageError(`--ca-file ${caFile} does not exist`);

  let token: string | undefined = tokenArg ?? (process.env.GARRET_TOKEN || undefined);
  if (token === undefined && interactive()) {
    token = (await promptHidden(`Token for ${url} (input hidden; empty for anonymous access): `)).trim() || undefined;
  }
  let endpoint = url.replace(/\/+$/, "");
  let checked: ServerCheck | null = null;
  if (!values["no-check"]) {
    checked = await check(endpoint, token, caFile);
    if (checked.cacheInUrl !== null) {
      process.stderr.write(`note: ${endpoint} is the address of cache ${checked.cacheInUrl}; saving the server's root ${checked.endpoint} `
        + `(name the cache as ${alias}:${checked.cacheInUrl})\n`);
    }
    endpoint = checked.endpoint;
  }
  const config = await loadClientConfig();
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
  process.stdout.write(`✓ Saved server ${alias} (${endpoint}${token ? describe(checked) : ", no token"}) to ${clientConfigPath()}\n`);
}

/** The server check, its refusals as one line that says nothing was saved. */
async function check(endpoint: string, token: string | undefined, caFile: string | undefined): Promise<ServerCheck> {
  try {
    return await checkServer(endpoint, token, caFile);
  } catch (err) {
    if (err instanceof LoginRefused || err instanceof TlsConfigError) {
      throw new CliError(`${err.message}; nothing was saved (garret login --no-check saves without asking the server)`);
    }
    throw err;
  }
}

/** ", sub alice, valid until 2027-12-03": what the server said the token is. */
function describe(checked: ServerCheck | null): string {
  if (checked === null) return ", not checked";
  if (checked.kind === "attic") return ", an Attic-compatible server: token not checked";
  const t: WhoamiToken | null = checked.whoami.token;
  return t ? `, sub ${t.sub}, valid until ${new Date(t.expires_at * 1000).toISOString().slice(0, 10)}` : "";
}

/** `garret logout ALIAS`: forgets a server and its token from the client config. */
export async function logoutCommand(argv: string[]): Promise<void> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, options: {} });
  const [alias, ...extra] = positionals;
  if (!alias || extra.length > 0) throw new UsageError("usage: garret logout ALIAS");
  const path = clientConfigPath();
  let config;
  try {
    config = await loadClientConfig(path);
  } catch (err) {
    if (err instanceof ClientConfigError) throw new CliError(err.message);
    throw err;
  }
  if (!Object.hasOwn(config.servers, alias)) throw new CliError(unknownAlias(alias, Object.keys(config.servers)));
  delete config.servers[alias];
  const wasDefault = config.defaultServer === alias;
  if (wasDefault) delete config.defaultServer;
  await saveClientConfig(config, path);
  process.stdout.write(`✓ Forgot server ${alias} and its token (${path})${wasDefault ? "; there is no default server now" : ""}\n`
    + "  The token itself stays valid until it expires or is revoked on the server (garret token revoke).\n");
}
