import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import { recordAudit } from "../cache/audit.ts";
import { parseArgs } from "./args.ts";
import { ConfigError, serverConfig, type ServerConfig } from "../config.ts";
import { parseDuration } from "../duration.ts";
import { openTokenAuthority } from "../auth/secret.ts";
import { isValidCachePattern, PERMISSION_LETTERS, type CachePermissionClaims, type Permission } from "../auth/permissions.ts";
import { parseDatabaseUrl } from "../db/open.ts";
import { mintRegistered } from "../cache/tokens.ts";
import { ApiClient } from "../client/api.ts";
import { openMetaStoreForCli } from "./database.ts";
import { savedServer } from "./remote.ts";
import { CliError, UsageError } from "./errors.ts";

/** Flag name of each permission, e.g. --create-cache. */
const FLAGS: Record<string, keyof Permission> = {
  pull: "pull", push: "push", delete: "delete", "create-cache": "createCache",
  "configure-cache": "configureCache", "configure-cache-retention": "configureCacheRetention",
  "destroy-cache": "destroyCache",
};

const USAGE = `usage: garret token create --sub NAME --validity 1y [--pull PATTERN]... [--data DIR | --config FILE]
       garret token list [--json] [--data DIR | --config FILE]
       garret token revoke ID | --sub SUB [--data DIR | --config FILE]
       garret token exchange [ALIAS] --validity 1h [--caches P[,P...]] [--pull-only] [--token TOKEN]`;

/** The audit log's actor for commands run on the server. */
function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return "cli";
  }
}

const SERVER_OPTIONS = { data: { type: "string" }, config: { type: "string" }, "database-url": { type: "string" } } as const;

export async function tokenCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === "create") return await createCommand(rest);
  if (sub === "list") return await listCommand(rest);
  if (sub === "revoke") return await revokeCommand(rest);
  if (sub === "exchange") return await exchangeCommand(rest);
  throw new UsageError(USAGE);
}

function validityOf(text: string | undefined): number {
  if (typeof text !== "string") throw new UsageError("--validity is required (e.g. 15m, 1d, 3mo, 1y)");
  let seconds: number;
  try {
    seconds = parseDuration(text, "--validity");
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (seconds < 1) throw new UsageError("--validity: must be at least 1s");
  return Math.floor(seconds);
}

/**
 * The server's settings, for commands that run on the server. Like gc and fsck, a data dir with no
 * database is refused: minting or listing there would use a secret and registry no server reads.
 */
function serverSide(v: Record<string, unknown>): ServerConfig {
  let config: ServerConfig;
  try {
    config = serverConfig({ data: v.data as string | undefined, config: v.config as string | undefined, databaseUrl: v["database-url"] as string | undefined });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  const url = config.database.url;
  const parsed = url.startsWith("sqlite://") ? parseDatabaseUrl(url) : null;
  if (parsed?.engine === "sqlite" && !existsSync(parsed.path)) {
    throw new CliError(`no garret server data in ${config.dataDir}; run this on the server and pass its --data DIR or --config FILE`);
  }
  return config;
}

async function createCommand(rest: string[]): Promise<void> {
  const options = Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: "string" as const, multiple: true }]));
  const { values, options: given } = parseArgs({
    args: rest,
    options: { ...options, ...SERVER_OPTIONS, sub: { type: "string" }, validity: { type: "string" } },
  });
  const v = values as Record<string, string | string[] | undefined>;
  if (typeof v.sub !== "string" || v.sub === "") throw new UsageError("--sub NAME is required");
  const validity = validityOf(v.validity as string | undefined);
  // Patterns in the order their flags were given: where globs overlap, the first one that matches
  // decides (as in Attic), so `--pull 'aw-*' --push '*'` may not push to aw-x.
  const caches: CachePermissionClaims = {};
  for (const { name: flag, value: pattern } of given) {
    const perm = Object.hasOwn(FLAGS, flag) ? FLAGS[flag]! : null;
    if (perm === null || typeof pattern !== "string") continue;
    if (!isValidCachePattern(pattern)) throw new UsageError(`--${flag}: invalid cache name or pattern ${JSON.stringify(pattern)}`);
    caches[pattern] = { ...caches[pattern], [PERMISSION_LETTERS[perm]]: 1 };
  }
  const config = serverSide(v);
  const { tokens } = await openTokenAuthority(config.dataDir, config.auth);
  const meta = await openMetaStoreForCli(config.database);
  try {
    const { token } = await mintRegistered(meta, tokens, v.sub, validity, caches, cliActor());
    process.stdout.write(`${token}\n`);
  } finally {
    meta.close();
  }
}

const iso = (seconds: number | null): string | null => (seconds === null ? null : new Date(seconds * 1000).toISOString());

async function listCommand(rest: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: rest, options: { ...SERVER_OPTIONS, json: { type: "boolean" } } });
  if (positionals.length > 0) throw new UsageError("usage: garret token list [--json] [--data DIR | --config FILE]");
  const config = serverSide(values);
  const meta = await openMetaStoreForCli(config.database);
  try {
    const rows = (await meta.listTokens()).map((t) => ({
      id: t.id, sub: t.sub, permissions: JSON.parse(t.permissions) as CachePermissionClaims,
      created_at: iso(t.createdAt), expires_at: iso(t.expiresAt), revoked: t.revokedAt !== null, revoked_at: iso(t.revokedAt),
      expired: t.expiresAt <= Date.now() / 1000,
    }));
    if (values.json) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    if (rows.length === 0) {
      process.stdout.write("no tokens minted yet\n");
      return;
    }
    for (const r of rows) {
      const state = r.revoked ? "revoked" : r.expired ? "expired" : "valid";
      const perms = Object.entries(r.permissions).map(([p, l]) => `${p}:${Object.keys(l).join("")}`).join(" ");
      process.stdout.write(`${r.id}  ${r.sub}  ${state}  expires ${r.expires_at}  ${perms}\n`);
    }
  } finally {
    meta.close();
  }
}

async function revokeCommand(rest: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...SERVER_OPTIONS, sub: { type: "string" } } });
  const bySub = typeof values.sub === "string";
  if (bySub === (positionals.length === 1) || positionals.length > 1 || values.sub === "") {
    throw new UsageError("usage: garret token revoke ID | --sub SUB [--data DIR | --config FILE]");
  }
  const config = serverSide(values);
  const meta = await openMetaStoreForCli(config.database);
  const at = Math.floor(Date.now() / 1000);
  try {
    if (bySub) {
      const n = await meta.revokeSub(values.sub!, at);
      await recordAudit({ meta }, cliActor(), "token.revoke", `sub:${values.sub}`, `${n} registered`);
      process.stdout.write(`revoked every token of sub ${values.sub} issued until now (${n} registered)\n`);
    } else {
      const id = positionals[0]!;
      if (!(await meta.revokeToken(id, at))) throw new CliError(`no token with id ${id}; see garret token list`);
      await recordAudit({ meta }, cliActor(), "token.revoke", `token:${id}`);
      process.stdout.write(`revoked token ${id}\n`);
    }
  } finally {
    meta.close();
  }
}

/** `garret token exchange`: client side; asks the server for a narrower, shorter-lived token. */
async function exchangeCommand(rest: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: { validity: { type: "string" }, caches: { type: "string", multiple: true }, "pull-only": { type: "boolean" }, token: { type: "string" }, "ca-file": { type: "string" } },
  });
  if (positionals.length > 1) throw new UsageError(USAGE.split("\n")[3]!.trim());
  const validity = validityOf(values.validity);
  const caches = values.caches?.flatMap((c) => c.split(",")).map((c) => c.trim()).filter((c) => c !== "");
  for (const c of caches ?? []) if (!isValidCachePattern(c)) throw new UsageError(`--caches: invalid cache name or pattern ${JSON.stringify(c)}`);
  const { alias, server } = await savedServer(positionals[0]);
  const token = values.token ?? process.env.GARRET_TOKEN ?? server.token;
  if (!token) throw new CliError(`${alias} has no token; pass --token or run garret login ${alias} URL TOKEN`);
  const api = new ApiClient({ ...server, token }, { caFile: values["ca-file"], alias });
  const answer = await api.exchangeToken({ validity_seconds: validity, caches, pull_only: values["pull-only"] === true });
  process.stdout.write(`${answer.token}\n`);
}
