import { chmod, mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseArgs } from "./args.ts";
import { rememberCache } from "../client/config.ts";
import { addCacheToNixConf, defaultNetrcPath, netrcFileOf, netrcPasswordOf, setNetrcPassword, userNixConfPath } from "../client/nixconf.ts";
import { permissionFor, type CachePermissionClaims } from "../auth/permissions.ts";
import { unverifiedPayload } from "../auth/token.ts";
import type { ApiClient } from "../client/api.ts";
import { REMOTE_OPTIONS, resolveRemote } from "./remote.ts";
import { CliError, UsageError } from "./errors.ts";

interface CacheView {
  substituter_endpoint: string;
  public_key: string;
  is_public: boolean;
}

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw new CliError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Replaces a file atomically, keeping its mode (or `mode` for a new file). */
async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  let keep = mode;
  try {
    keep = (await stat(path)).mode & 0o777;
  } catch {
    // new file
  }
  try {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.garret-${process.pid}.tmp`;
    await writeFile(tmp, text, { mode: keep });
    await chmod(tmp, keep);
    await rename(tmp, path);
  } catch (err) {
    throw new CliError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * `garret use ALIAS:CACHE`: makes Nix substitute from the cache. Adds the substituter and its key
 * to the user's nix.conf and, for a private cache, the token to a netrc file nix.conf points at.
 * Idempotent; never touches other settings; --dry-run prints the change instead.
 */
export async function useCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { ...REMOTE_OPTIONS, "nix-conf": { type: "string" }, netrc: { type: "string" }, "dry-run": { type: "boolean" }, token: { type: "string" } },
  });
  if (positionals.length !== 1) throw new UsageError("usage: garret use ALIAS:CACHE [--nix-conf FILE] [--netrc FILE] [--token TOKEN] [--dry-run]");
  const { api, cache, alias } = await resolveRemote(positionals[0], { caFile: values["ca-file"] });
  const info = await api.getCache<CacheView>(cache);
  const dry = values["dry-run"] === true;
  const say = (line: string) => process.stdout.write(`${line}\n`);

  const confPath = resolve(values["nix-conf"] ?? userNixConfPath());
  const before = await readOrEmpty(confPath);
  let netrcPath: string | null = null;
  if (!info.is_public) {
    if (!api.token && !values.token) throw new CliError(`${alias}:${cache} is private and ${alias} has no token; run garret login ${alias} URL TOKEN`);
    const named = netrcFileOf(before);
    const wanted = values.netrc ? resolve(values.netrc) : null;
    if (named && wanted && resolve(named) !== wanted) {
      throw new CliError(`${confPath} already sets netrc-file = ${named}; pass --netrc ${named} or change it there`);
    }
    netrcPath = named ?? wanted ?? defaultNetrcPath(confPath);
  }
  const change = addCacheToNixConf(before, { substituter: info.substituter_endpoint, publicKey: info.public_key, netrcFile: netrcPath });

  let netrcChanged = false;
  let netrcText = "";
  let host = "";
  if (change.netrcFile) {
    host = new URL(info.substituter_endpoint).hostname;
    const current = await readOrEmpty(change.netrcFile);
    const password = values.token ?? await pullTokenFor(api, cache, netrcPasswordOf(current, host), dry);
    ({ text: netrcText, changed: netrcChanged } = setNetrcPassword(current, host, password));
  }

  if (change.added.length === 0 && !netrcChanged) {
    say(`✓ ${alias}:${cache} is already configured in ${confPath}; nothing changed`);
    return;
  }
  if (dry) {
    if (change.added.length > 0) {
      say(`Would add to ${confPath}:`);
      for (const a of change.added) say(`+ ${a}`);
    }
    if (netrcChanged) say(`Would write credentials for machine ${host} to ${change.netrcFile} (mode 0600)`);
    return;
  }
  if (change.added.length > 0) {
    await writeAtomic(confPath, change.text, 0o644);
    say(`✓ Added to ${confPath}:`);
    for (const a of change.added) say(`  ${a}`);
  }
  if (netrcChanged) {
    await writeAtomic(change.netrcFile!, netrcText, 0o600);
    say(`✓ Wrote credentials for machine ${host} to ${change.netrcFile}`);
  }
  await rememberCache(alias, cache, true);
}

/** Pull-only tokens `garret use` writes to netrc live this long (bounded by the login token's expiry). */
const NETRC_TOKEN_SECONDS = 366 * 86400;

const caches = (token: string | null): CachePermissionClaims | null => {
  const claims = token ? unverifiedPayload(token)?.["https://jwt.attic.rs/v1"] as { caches?: CachePermissionClaims } | undefined : undefined;
  return claims?.caches && typeof claims.caches === "object" ? claims.caches : null;
};

/**
 * The token netrc gets for a private cache: a pull-only one, not the login token (netrc is read by
 * every Nix build, and a push token there can poison the cache). netrc holds one password per host,
 * so the token covers the caches the current one already does plus this one; a current token that
 * already pulls from it and lasts five more minutes is kept (a second `use` changes nothing). A server
 * without the exchange endpoint (Attic) gets the login token, as before, with a warning.
 */
async function pullTokenFor(api: ApiClient, cache: string, current: string | null, dry: boolean): Promise<string> {
  const held = caches(current);
  const exp = current ? unverifiedPayload(current)?.exp : undefined;
  if (held && permissionFor(held, cache).pull && typeof exp === "number" && exp > Date.now() / 1000 + 300) return current!;
  if (dry) return "(a pull-only token)";
  const wanted = [...new Set([...Object.keys(held ?? {}).filter((p) => permissionFor(held, p).pull || p.includes("*")), cache])];
  try {
    return (await api.exchangeToken({ validity_seconds: NETRC_TOKEN_SECONDS, caches: wanted, pull_only: true })).token;
  } catch (err) {
    process.stderr.write(`warning: the server did not mint a pull-only token (${(err as Error).message.split("\n")[0]}); writing the login token to netrc\n`);
    return api.token!;
  }
}
