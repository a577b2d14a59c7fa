import { realpathSync } from "node:fs";
import { parseArgs } from "./args.ts";
import { Spool, stateDir } from "../client/spool.ts";
import { CliError, UsageError } from "./errors.ts";
import { didYouMean } from "../suggest.ts";
import { runsLong } from "./long-running.ts";

const USAGE = "usage: garret queue ALIAS:CACHE [PATH...] (paths default to $OUT_PATHS) | garret queue --drain | --worker | --list | --remove ID|PATH...";

/**
 * The outputs a post-build-hook is called for: $OUT_PATHS, or, when that is empty (Nix 2.8.0 passes
 * it empty), the outputs of $DRV_PATH.
 */
function hookOutputs(env = process.env): string[] {
  const out = (env.OUT_PATHS ?? "").split(/\s+/).filter(Boolean);
  if (out.length > 0 || !env.DRV_PATH) return out;
  const q = Bun.spawnSync(["nix-store", "--query", "--outputs", env.DRV_PATH], { stderr: "pipe" });
  if (q.exitCode !== 0) throw new Error(`OUT_PATHS is empty and nix-store --query --outputs ${env.DRV_PATH} failed: ${q.stderr.toString().trim().split("\n").pop()}`);
  return q.stdout.toString().split("\n").map((l) => l.trim()).filter(Boolean);
}

/**
 * `garret queue ALIAS:CACHE`: for Nix's post-build-hook. Appends $OUT_PATHS (or the given paths)
 * to the durable spool and returns. It never fails: a hook that exits non-zero would fail the
 * build, and a cache being down is no reason for that. Problems are reported on stderr.
 */
function enqueue(argv: string[]): void {
  try {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { "state-dir": { type: "string" } } });
    const [target, ...args] = positionals;
    if (!target || !/^[^:\s]*:?[A-Za-z0-9][A-Za-z0-9\-_+]*$/.test(target)) throw new UsageError(USAGE);
    const paths = args.length > 0 ? args : hookOutputs();
    if (paths.length === 0) {
      process.stderr.write("garret queue: no paths (OUT_PATHS and DRV_PATH are empty), nothing queued\n");
      return;
    }
    const spool = Spool.open(values["state-dir"] ?? stateDir());
    try {
      const added = spool.enqueue(target, paths);
      process.stderr.write(`garret queue: queued ${added} path(s) for ${target}${added < paths.length ? ` (${paths.length - added} already queued)` : ""}\n`);
    } finally {
      spool.close();
    }
  } catch (err) {
    process.stderr.write(`garret queue: ${(err as Error).message} (the build goes on; nothing was queued)\n`);
  }
}

export async function queueCommand(argv: string[]): Promise<void> {
  const mode = argv.find((a) => a === "--drain" || a === "--worker" || a === "--list" || a === "--remove");
  // A post-build-hook names its target first; a flag first without a mode is a mistyped mode.
  if (!mode && argv[0]?.startsWith("--") && argv[0] !== "--state-dir" && !argv[0].startsWith("--state-dir=")) {
    const given = argv[0].replace(/=.*$/, "").slice(2);
    const hint = didYouMean(given, ["drain", "worker", "list", "state-dir"], (n) => `"--${n}"`);
    throw new UsageError(`unknown option "--${given}"${hint || "; see garret queue --help"}`);
  }
  if (!mode) return enqueue(argv);

  const { PUSH_OPTIONS, pushOptionsFrom } = await import("./push.ts");
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      ...PUSH_OPTIONS, drain: { type: "boolean" }, worker: { type: "boolean" }, list: { type: "boolean" }, remove: { type: "boolean" },
      "state-dir": { type: "string" }, interval: { type: "string" },
    },
  });
  if ([values.drain, values.worker, values.list, values.remove].filter(Boolean).length > 1) {
    throw new UsageError("--drain, --worker, --list and --remove exclude each other");
  }
  if (values.remove ? positionals.length === 0 : positionals.length > 0) {
    throw new UsageError(values.remove ? "usage: garret queue --remove ID|PATH... (the ids --list shows, or store paths)" : USAGE);
  }
  const spool = Spool.open(values["state-dir"] ?? stateDir());
  try {
    if (values.list) return listQueue(spool, values.json === true);
    if (values.remove) return removeEntries(spool, positionals, values.json === true);
    const interval = values.interval === undefined ? 1 : Number(values.interval);
    if (!(interval > 0 && interval <= 3600)) throw new UsageError("--interval must be a number of seconds, more than 0");
    if (values.worker) runsLong();
    const { runWorker } = await import("./queue-worker.ts");
    await runWorker(spool, {
      forever: values.worker === true,
      intervalMs: interval * 1000,
      pushOptions: pushOptionsFrom(values),
      caFile: values["ca-file"],
      json: values.json === true,
    });
  } finally {
    spool.close();
  }
}

/** `--list`: one line per entry, its id first (what --remove takes), and why it failed or is held. */
function listQueue(spool: Spool, json: boolean): void {
  const entries = spool.entries();
  if (json) return void process.stdout.write(`${JSON.stringify(entries)}\n`);
  if (entries.length === 0) return void process.stdout.write(`The queue is empty (${spool.path}).\n`);
  for (const e of entries) {
    const note = e.held ? ` (held: ${e.held})` : e.attempts ? ` (${e.attempts} failed attempts: ${e.lastError})` : "";
    process.stdout.write(`${e.id} ${e.target} ${e.path}${note}\n`);
  }
}

/** `--remove ID|PATH...`: drops entries; `./result`-style links name the store path they point to. */
function removeEntries(spool: Spool, specs: string[], json: boolean): void {
  const resolved = specs.map((s) => {
    if (/^\d+$/.test(s) || s.startsWith("/nix/store/")) return s;
    try {
      return realpathSync(s);
    } catch {
      return s;
    }
  });
  const { removed, unmatched } = spool.removeEntries(resolved);
  if (json) process.stdout.write(`${JSON.stringify({ removed, unmatched })}\n`);
  else process.stdout.write(`Removed ${removed} entr${removed === 1 ? "y" : "ies"} from the queue.\n`);
  if (unmatched.length > 0) {
    throw new CliError(`not in the queue: ${unmatched.join(", ")} (garret queue --list shows the ids and paths)`);
  }
}
