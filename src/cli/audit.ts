import { parseArgs } from "./args.ts";
import { UsageError } from "./errors.ts";
import { MAINTENANCE_OPTIONS, openMaintenance } from "./gc.ts";

/**
 * `garret audit [--data DIR | --config FILE] [--json]`: the admin actions (cache create,
 * configure, destroy, purge, token mint and revoke) with actor and time, oldest first. Run on
 * the server like `gc`: it reads the metadata database directly.
 */
export async function auditCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: MAINTENANCE_OPTIONS });
  if (values.data && values.config) throw new UsageError("--data and --config exclude each other");
  const m = await openMaintenance(values);
  try {
    const entries = await m.meta.auditLog();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(entries.map((e) => ({ ...e, at: new Date(e.at * 1000).toISOString() })))}\n`);
      return;
    }
    for (const e of entries) {
      process.stdout.write(`${new Date(e.at * 1000).toISOString()}  ${e.actor}  ${e.action}  ${e.target}${e.detail ? `  (${e.detail})` : ""}\n`);
    }
  } finally {
    m.meta.close();
  }
}
