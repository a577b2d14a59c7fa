import { parseArgs } from "./args.ts";
import { stringify } from "smol-toml";
import { ConfigError, serverConfig, type ServerConfig } from "../config.ts";
import { UsageError } from "./errors.ts";

const REDACTED = "<redacted>";

/** The effective settings in the config file's own shape, secrets hidden. */
export function printableConfig(c: ServerConfig): Record<string, unknown> {
  const storage: Record<string, unknown> = c.storage.type === "local"
    ? { type: "local", path: c.storage.path }
    : {
      type: "s3", bucket: c.storage.bucket, region: c.storage.region,
      ...(c.storage.endpoint ? { endpoint: c.storage.endpoint } : {}),
      "force-path-style": c.storage.forcePathStyle, prefix: c.storage.prefix,
      ...(c.storage.accessKeyId ? { "access-key-id": c.storage.accessKeyId, "secret-access-key": REDACTED } : {}),
      "max-attempts": c.storage.maxAttempts,
    };
  return {
    listen: c.listen,
    "data-dir": c.dataDir,
    ...(c.publicUrl ? { "public-url": c.publicUrl } : {}),
    compression: { type: c.ingest.compression, level: c.ingest.compressionLevel },
    storage,
    database: { url: c.database.url.replace(/\/\/([^:@/]*):[^@/]*@/, `//$1:${REDACTED}@`), "pool-size": c.database.poolSize },
    gc: {
      retention: c.gc.defaultRetention, grace: c.gc.grace,
      "compact-threshold": c.gc.compactThreshold, interval: c.gc.interval,
    },
  };
}

/** `garret config check|print [--config FILE]`: validate without starting; show what applies. */
export async function configCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({ args: rest, options: { config: { type: "string" } } });
  if (sub !== "check" && sub !== "print") throw new UsageError("usage: garret config check|print [--config FILE]");
  let config: ServerConfig;
  try {
    config = serverConfig({ config: values.config });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  if (sub === "check") {
    process.stdout.write(`config OK${config.configFile ? `: ${config.configFile}` : " (no config file: defaults and environment)"}\n`);
    return;
  }
  const source = config.configFile ? `# from ${config.configFile}, environment and defaults\n` : "# defaults and environment (no config file)\n";
  process.stdout.write(`${source}${stringify(printableConfig(config))}\n`);
}
