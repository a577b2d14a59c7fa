import { parseArgs } from "node:util";
import { resolveRemote } from "./remote.ts";
import { UsageError } from "./errors.ts";

interface CacheConfigView {
  substituter_endpoint: string;
  public_key: string;
  is_public: boolean;
  store_dir: string;
  priority: number;
  upstream_cache_key_names: string[];
  retention_period: unknown;
}

const OPTIONS = {
  public: { type: "boolean" },
  private: { type: "boolean" },
  priority: { type: "string" },
  "upstream-cache-key-name": { type: "string", multiple: true },
  "regenerate-keypair": { type: "boolean" },
  json: { type: "boolean" },
  yes: { type: "boolean" },
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

export async function cacheCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  // garret cache rm: removing one path (garbage collection, issue 5)
  if (sub === "rm") return (await import("./cache-rm.ts")).cacheRmCommand(rest);
  const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true });
  const { api, cache } = await resolveRemote(positionals[0]);
  const out = (c: CacheConfigView) => (values.json ? process.stdout.write(`${JSON.stringify(c, null, 2)}\n`) : printInfo(cache, c));
  switch (sub) {
    case "create": {
      const body = { keypair: "Generate", is_public: false, ...settingsFrom(values) };
      const c = await api.createCache<CacheConfigView>(cache, body);
      if (values.json) out(c);
      else process.stdout.write(`✓ Created cache ${cache}\n  Public Key: ${c.public_key}\n`);
      return;
    }
    case "info":
      return void out(await api.getCache<CacheConfigView>(cache));
    case "configure": {
      const body = settingsFrom(values);
      if (Object.keys(body).length === 0) throw new UsageError("nothing to configure: pass --public, --private, --priority N, ...");
      const c = await api.configureCache<CacheConfigView>(cache, body);
      if (values.json) out(c);
      else process.stdout.write(`✓ Configured cache ${cache}\n`);
      return;
    }
    case "destroy":
      await api.destroyCache(cache);
      process.stdout.write(`✓ Destroyed cache ${cache}\n`);
      return;
    default:
      throw new UsageError("usage: garret cache create|info|configure|destroy ALIAS:CACHE [options]");
  }
}
