import type { CacheConfigView } from "../api/attic.ts";
import type { CacheSummary } from "../api/garret.ts";
import { parseArgs } from "./args.ts";
import { ApiClient, ApiError } from "../client/api.ts";
import { loadClientConfig, rememberCache } from "../client/config.ts";
import { REMOTE_OPTIONS, resolveRemote } from "./remote.ts";
import { confirm, interactive } from "./prompt.ts";
import { CliError, UsageError } from "./errors.ts";

const OPTIONS = {
  public: { type: "boolean" },
  private: { type: "boolean" },
  priority: { type: "string" },
  "upstream-cache-key-name": { type: "string", multiple: true },
  "regenerate-keypair": { type: "boolean" },
  json: { type: "boolean" },
  yes: { type: "boolean" },
  ...REMOTE_OPTIONS,
} as const;

function settingsFrom(values: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (values.public && values.private) throw new UsageError("--public and --private exclude each other");
  if (values.public) body.is_public = true;
  if (values.private) body.is_public = false;
  if (typeof values.priority === "string") {
    const n = Number(values.priority);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError("--priority must be a non-negative integer");
    body.priority = n;
  }
  if (Array.isArray(values["upstream-cache-key-name"])) body.upstream_cache_key_names = values["upstream-cache-key-name"];
  if (values["regenerate-keypair"]) body.keypair = "Generate";
  return body;
}

function printInfo(cache: string, c: CacheConfigView): void {
  process.stdout.write([
    `Cache: ${cache}`,
    `  Public: ${c.is_public}`,
    `  Public Key: ${c.public_key}`,
    `  Binary Cache Endpoint: ${c.substituter_endpoint}`,
    `  Store Directory: ${c.store_dir}`,
    `  Priority: ${c.priority}`,
    `  Upstream Cache Keys: ${JSON.stringify(c.upstream_cache_key_names)}`,
    `  Retention Period: ${JSON.stringify(c.retention_period)}`,
  ].join("\n") + "\n");
}

interface ListedCache {
  server: string;
  name: string;
  /** "ok", or why the cache could not be read ("missing": gone or no longer visible to the token). */
  status: string;
  is_public?: boolean;
  public_key?: string;
  substituter_endpoint?: string;
  /** From the server's listing (GET /_api/v1/caches), where it has one. */
  paths?: number;
  nar_bytes?: number;
  stored_bytes?: number;
}

/**
 * `garret cache list [ALIAS]`: on a server with a listing (GET /_api/v1/caches), every cache the
 * token may see, and the caches this client remembers that are no longer there as "missing". On a
 * server without one (Attic's API has none), the caches this client knows (created, used or pushed
 * to from here), each checked against the server.
 */
async function listCaches(aliasFilter: string | undefined, json: boolean, caFile: string | undefined): Promise<void> {
  const config = await loadClientConfig();
  const aliases = aliasFilter ? [aliasFilter] : Object.keys(config.servers).sort();
  if (aliasFilter && !config.servers[aliasFilter]) throw new CliError(`unknown server alias ${JSON.stringify(aliasFilter)}; run: garret login ${aliasFilter} URL TOKEN`);
  const rows: ListedCache[] = [];
  for (const alias of aliases) {
    const server = config.servers[alias]!;
    const api = new ApiClient(server, { caFile, retry: { retries: 1, baseMs: 200, maxMs: 1000 } });
    const listed = await serverListing(api);
    if (listed) {
      const seen = new Set(listed.map((c) => c.name));
      rows.push(...listed.map((c): ListedCache => ({
        server: alias, name: c.name, status: "ok", is_public: c.is_public,
        substituter_endpoint: `${api.base}/${c.name}`, paths: c.paths, nar_bytes: c.nar_bytes, stored_bytes: c.stored_bytes,
      })));
      rows.push(...(server.caches ?? []).filter((n) => !seen.has(n)).map((name): ListedCache => ({ server: alias, name, status: "missing" })));
      continue;
    }
    rows.push(...await Promise.all((server.caches ?? []).map(async (name): Promise<ListedCache> => {
      try {
        const c = await api.getCache<CacheConfigView>(name);
        return { server: alias, name, status: "ok", is_public: c.is_public, public_key: c.public_key, substituter_endpoint: c.substituter_endpoint };
      } catch (err) {
        if (err instanceof ApiError && err.error === "NoSuchCache") return { server: alias, name, status: "missing" };
        return { server: alias, name, status: err instanceof ApiError ? err.error : "error" };
      }
    })));
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write("No caches known yet: garret cache create, use or push remembers them.\n");
    return;
  }
  const table = [["CACHE", "PUBLIC", "STATUS", "ENDPOINT"], ...rows.map((r) => [
    `${r.server}:${r.name}`, r.is_public === undefined ? "-" : r.is_public ? "yes" : "no", r.status, r.substituter_endpoint ?? "-",
  ])];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
}

/** The server's own listing, or null when it has none (an Attic server, an older garret). */
async function serverListing(api: ApiClient): Promise<CacheSummary[] | null> {
  try {
    return (await api.listCaches()).caches;
  } catch {
    // No listing, or the server could not be asked: each remembered cache is checked (and its error shown) instead.
    return null;
  }
}

export async function cacheCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  // garret cache rm: removing one path (garbage collection, issue 5)
  if (sub === "rm") return (await import("./cache-rm.ts")).cacheRmCommand(rest);
  // provenance (issue 16): who pushed what, and undoing an uploader
  if (sub === "log") return (await import("./cache-log.ts")).cacheLogCommand(rest);
  if (sub === "purge") return (await import("./cache-log.ts")).cachePurgeCommand(rest);
  const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true });
  if (sub === "list") {
    if (positionals.length > 1) throw new UsageError("usage: garret cache list [ALIAS] [--json]");
    return listCaches(positionals[0], values.json === true, values["ca-file"]);
  }
  if (!["create", "info", "configure", "destroy"].includes(sub ?? "")) {
    throw new UsageError("usage: garret cache list|create|info|configure|destroy|rm|log|purge ALIAS:CACHE [options]");
  }
  const { api, cache, alias } = await resolveRemote(positionals[0], { caFile: values["ca-file"] });
  const out = (c: CacheConfigView) => (values.json ? process.stdout.write(`${JSON.stringify(c, null, 2)}\n`) : printInfo(cache, c));
  switch (sub) {
    case "create": {
      const body = { keypair: "Generate", is_public: false, ...settingsFrom(values) };
      const c = await api.createCache<CacheConfigView>(cache, body);
      await rememberCache(alias, cache, true);
      if (values.json) out(c);
      else process.stdout.write(`✓ Created cache ${cache}\n  Public Key: ${c.public_key}\n`);
      return;
    }
    case "info": {
      const c = await api.getCache<CacheConfigView>(cache);
      await rememberCache(alias, cache, true);
      return void out(c);
    }
    case "configure": {
      const body = settingsFrom(values);
      if (Object.keys(body).length === 0) throw new UsageError("nothing to configure: pass --public, --private, --priority N, ...");
      const c = await api.configureCache<CacheConfigView>(cache, body);
      if (values.json) out(c);
      else process.stdout.write(`✓ Configured cache ${cache}\n`);
      return;
    }
    case "destroy": {
      // On a terminal, ask first (--yes skips); scripts without a terminal are not asked.
      if (!values.yes && interactive()) {
        if (!(await confirm(`Destroy cache ${cache} on ${alias} (${api.base})? Its paths will no longer be served.`))) {
          throw new CliError(`not destroying ${cache}`);
        }
      }
      await api.destroyCache(cache);
      await rememberCache(alias, cache, false);
      process.stdout.write(`✓ Destroyed cache ${cache}\n`);
      return;
    }
  }
}
