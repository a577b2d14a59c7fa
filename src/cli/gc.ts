import { join } from "node:path";
import { parseArgs } from "./args.ts";
import { existsSync } from "node:fs";
import { ConfigError, databasePath, serverConfig } from "../config.ts";
import { openMetaStoreForCli } from "./database.ts";
import { parseDatabaseUrl } from "../db/open.ts";
import type { MetaStore } from "../db/types.ts";
import { openStorageForCli } from "./storage.ts";
import type { Storage } from "../store/storage.ts";
import { collectGarbage, GcBusyError, type GcReport } from "../gc/collect.ts";
import type { GcOptions } from "../gc/config.ts";
import { CliError, UsageError } from "./errors.ts";

export interface Maintenance {
  meta: MetaStore;
  storage: Storage;
  tmpDir?: string;
  gc: GcOptions;
  packSizeLimit: number;
}

/**
 * Opens a data directory for offline maintenance (gc, fsck) the way `garret serve` would, from
 * --data DIR or --config FILE (the same TOML file serve reads). Safe while the server runs:
 * SQLite serialises writers, and the collector lock keeps two collections apart.
 */
export async function openMaintenance(values: Record<string, unknown>): Promise<Maintenance> {
  let config;
  try {
    config = serverConfig({
      config: values.config as string | undefined, data: values.data as string | undefined,
      databaseUrl: values["database-url"] as string | undefined,
      retention: values.retention as string | undefined, gcGrace: values.grace as string | undefined,
      compactThreshold: values["compact-threshold"] as string | undefined,
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  const gc = config.gc;
  const db = config.database.url;
  const parsed = db.startsWith("sqlite://") ? parseDatabaseUrl(db) : null;
  if (parsed?.engine === "sqlite" && !existsSync(parsed.path)) {
    throw new CliError(`no garret database in ${config.dataDir}; pass the server's --data DIR or --config FILE`);
  }
  const storage = await openStorageForCli(config.storage);
  const meta = await openMetaStoreForCli(config.database);
  const tmpDir = config.storage.type === "local" ? join(config.storage.path, ".tmp") : undefined;
  return { meta, storage, tmpDir, gc, packSizeLimit: config.ingest.packSizeLimit };
}

export const MAINTENANCE_OPTIONS = {
  data: { type: "string" }, config: { type: "string" }, json: { type: "boolean" }, "database-url": { type: "string" },
} as const;

const MiB = 1024 * 1024;
export const formatBytes = (n: number): string =>
  n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;

export function describeReport(r: GcReport): string {
  const verb = r.dry_run ? "would remove" : "removed";
  return `gc${r.dry_run ? " (dry run)" : ""}: ${verb} ${r.objects} objects, ${r.nars} NARs, ${r.chunks} chunks, `
    + `${r.packs} packs (${r.compacted} compacted), ${r.leftovers} leftover files; `
    + `${r.dry_run ? "would free" : "freed"} ${formatBytes(Math.max(0, r.bytes))}`;
}

export async function gcCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MAINTENANCE_OPTIONS, "dry-run": { type: "boolean" }, retention: { type: "string" },
      grace: { type: "string" }, "compact-threshold": { type: "string" },
    },
  });
  if (values.data && values.config) throw new UsageError("--data and --config exclude each other");
  const m = await openMaintenance(values);
  try {
    const report = await collectGarbage(m, {
      ...m.gc, dryRun: values["dry-run"] ?? false, packSizeLimit: m.packSizeLimit,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${describeReport(report)}\n`);
  } catch (err) {
    if (err instanceof GcBusyError) throw new CliError(err.message);
    throw err;
  } finally {
    m.meta.close();
  }
}
