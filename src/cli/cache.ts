import type { CacheConfigView } from "../api/attic.ts";
import type { CacheStatsAnswer, CacheSummary } from "../api/garret.ts";
import { DurationError, exactDuration, parseDuration } from "../duration.ts";
import { parseSize, SizeError } from "../size.ts";
import { fmtBytes } from "./progress.ts";
import { parseArgs } from "./args.ts";
import { ApiClient, ApiError } from "../client/api.ts";
import { loadClientConfig, rememberCache } from "../client/config.ts";
import { REMOTE_OPTIONS, resolveRemote, unknownAlias } from "./remote.ts";
import { confirm, interactive } from "./prompt.ts";
import { CliError, UsageError } from "./errors.ts";

const OPTIONS = {
  public: { type: "boolean" },
  private: { type: "boolean" },
  priority: { type: "string" },
  "upstream-cache-key-name": { type: "string", multiple: true },
  "regenerate-keypair": { type: "boolean" },
  retention: { type: "string" },
  quota: { type: "string" },
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
  if (typeof values.retention === "string") body.retention_period = retentionFrom(values.retention);
  if (typeof values.quota === "string") body.quota_bytes = quotaFrom(values.quota);
  return body;
}

/**
 * --retention: a duration in the one grammar (7d, 3mo, 1y); 0, "forever" or "none" keeps paths
 * forever; "default" goes back to the server's `[gc] retention` (Attic's "Global").
 */
function retentionFrom(text: string): CacheConfigView["retention_period"] {
  const t = text.trim().toLowerCase();
  if (t === "default" || t === "global") return "Global";
  if (t === "forever" || t === "none") return { Period: 0 };
  try {
    return { Period: parseDuration(t, "--retention") };
  } catch (err) {
    if (err instanceof DurationError) throw new UsageError(`${err.message}, or 0/forever to keep paths forever, or default for the server's [gc] retention`);
    throw err;
  }
}

/** --quota: stored bytes the cache may keep (10G, 500MiB), or "none" to remove the quota. */
function quotaFrom(text: string): number | null {
  if (["none", "off"].includes(text.trim().toLowerCase())) return null;
  let n: number;
  try {
    n = parseSize(text, "--quota");
  } catch (err) {
    if (err instanceof SizeError) throw new UsageError(`${err.message}, or none to remove the quota`);
    throw err;
  }
  // A quota of 0 would evict every unpinned path at the next collection: surely a slip.
  if (n === 0) throw new UsageError("--quota 0 would evict every unpinned path; pass a size like 10G, or none to remove the quota");
  return n;
}

/** The figures `cache info` adds: path count, logical and stored bytes, dedup saving, last push. */
export interface CacheFigures {
  paths: number;
  /** Logical bytes: the NAR sizes of its paths added up. */
  nar_bytes: number;
  /** What its distinct NARs take in storage (compressed, deduplicated). */
  stored_bytes: number;
  /** The share of nar_bytes that storage did not need (0..1): 1 - stored_bytes / nar_bytes. */
  dedup_saving: number;
  /** When the last path was pushed (ISO 8601, UTC), or null. */
  last_push: string | null;
}

export function figuresOf(s: CacheStatsAnswer): CacheFigures {
  const saving = s.nar_bytes > 0 ? Math.max(0, 1 - s.stored_bytes / s.nar_bytes) : 0;
  return {
    paths: s.paths, nar_bytes: s.nar_bytes, stored_bytes: s.stored_bytes,
    dedup_saving: Number(saving.toFixed(4)),
    last_push: s.last_push_at === null ? null : new Date(s.last_push_at * 1000).toISOString(),
  };
}

/** The server's figures, or null where it has none (Attic's API, an older garret) or will not say. */
async function figures(api: ApiClient, cache: string): Promise<CacheFigures | null> {
  try {
    return figuresOf(await api.cacheStats(cache));
  } catch (err) {
    // 404: no such endpoint; 403: a token that may read the cache's settings but not its figures.
    if (err instanceof ApiError && (err.status === 404 || err.status === 403)) return null;
    throw err;
  }
}

function fmtRetention(r: CacheConfigView["retention_period"]): string {
  if (r === "Global") return "server default ([gc] retention)";
  if (r.Period === 0) return "forever";
  const exact = exactDuration(r.Period);
  return exact ? `${exact} (${r.Period} s)` : `${r.Period} s`;
}

function fmtAgo(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const ago = s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
  return `${iso.replace("T", " ").replace(/\.\d+Z$/, " UTC")} (${ago} ago)`;
}

function printInfo(cache: string, c: CacheConfigView, f: CacheFigures | null = null): void {
  const lines = [
    `Cache: ${cache}`,
    `  Public: ${c.is_public}`,
    `  Public Key: ${c.public_key}`,
    `  Binary Cache Endpoint: ${c.substituter_endpoint}`,
    `  Store Directory: ${c.store_dir}`,
    `  Priority: ${c.priority}`,
    `  Upstream Cache Keys: ${JSON.stringify(c.upstream_cache_key_names)}`,
    `  Retention Period: ${fmtRetention(c.retention_period)}`,
    `  Quota: ${c.quota_bytes === null || c.quota_bytes === undefined ? "none" : `${fmtBytes(c.quota_bytes)} (${c.quota_bytes} bytes)`}`,
  ];
  if (f) {
    lines.push(
      `  Paths: ${f.paths}`,
      `  Logical Size (NAR): ${fmtBytes(f.nar_bytes)}`,
      `  Stored Size: ${fmtBytes(f.stored_bytes)}`,
      `  Dedup Saving: ${(f.dedup_saving * 100).toFixed(1)}% (${fmtBytes(Math.max(0, f.nar_bytes - f.stored_bytes))})`,
      `  Last Push: ${f.last_push ? fmtAgo(f.last_push) : "never"}`,
    );
  }
  process.stdout.write(lines.join("\n") + "\n");
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
  if (aliasFilter && !config.servers[aliasFilter]) throw new CliError(unknownAlias(aliasFilter, Object.keys(config.servers)));
  const rows: ListedCache[] = [];
  for (const alias of aliases) {
    const server = config.servers[alias]!;
    const api = new ApiClient(server, { caFile, alias, retry: { retries: 1, baseMs: 200, maxMs: 1000 } });
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
      const stats = figures(api, cache);
      stats.catch(() => {}); // awaited below, after the config (whose error, e.g. NoSuchCache, comes first)
      const c = await api.getCache<CacheConfigView>(cache);
      const f = await stats;
      await rememberCache(alias, cache, true);
      if (values.json) process.stdout.write(`${JSON.stringify({ ...c, ...f }, null, 2)}\n`);
      else printInfo(cache, c, f);
      return;
    }
    case "configure": {
      const body = settingsFrom(values);
      if (Object.keys(body).length === 0) throw new UsageError("nothing to configure: pass --public, --private, --priority N, --retention DURATION, --quota SIZE, ...");
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
