import { parseArgs } from "./args.ts";
import { fsck } from "../gc/fsck.ts";
import { UsageError } from "./errors.ts";
import { MAINTENANCE_OPTIONS, openMaintenance } from "./gc.ts";

/** `garret fsck [--repair] [--sample N] [--data DIR | --config FILE] [--json]` */
export async function fsckCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv, options: { ...MAINTENANCE_OPTIONS, repair: { type: "boolean" }, sample: { type: "string" } },
  });
  if (values.data && values.config) throw new UsageError("--data and --config exclude each other");
  let sample: number | null = null;
  if (values.sample !== undefined) {
    sample = Number(values.sample);
    if (!Number.isSafeInteger(sample) || sample < 0) throw new UsageError("--sample must be a number of chunks");
  }
  const m = await openMaintenance(values);
  try {
    const r = await fsck(m, { repair: values.repair ?? false, sample, log: (l) => process.stderr.write(`${l}\n`) });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(r)}\n`);
    } else {
      process.stdout.write(`fsck: ${r.objects} paths, ${r.chunks} chunks (${r.verified} hashed), ${r.damaged_chunks} damaged\n`);
      for (const [cache, paths] of Object.entries(r.damaged)) {
        process.stdout.write(`  ${cache}: ${paths.length} damaged path(s)${r.repaired ? ", hidden until re-pushed" : ""}\n`);
        for (const p of paths) process.stdout.write(`    ${p}\n`);
      }
      if (r.damaged_chunks > 0 && !r.repaired) process.stdout.write("  run garret fsck --repair to hide them so clients fall back to other caches\n");
    }
    if (r.damaged_chunks > 0 && !r.repaired) process.exitCode = 1;
  } finally {
    m.meta.close();
  }
}
