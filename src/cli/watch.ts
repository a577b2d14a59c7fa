import { parseArgs } from "./args.ts";
import { rememberCache } from "../client/config.ts";
import { push } from "../client/push.ts";
import { NIX_DB, openStoreSource } from "../client/watch.ts";
import { PUSH_OPTIONS, pushOptionsFrom } from "./push.ts";
import { outputMode, pushReporter } from "./progress.ts";
import { resolveRemote } from "./remote.ts";
import { UsageError } from "./errors.ts";
import { runsLong } from "./long-running.ts";

/** A burst is pushed once no new path appeared for one poll, or when it gets this big or old. */
const MAX_BATCH = 2000;
const MAX_WAIT_MS = 10000;
const MAX_ATTEMPTS = 5;

/**
 * `garret watch-store ALIAS:CACHE`: pushes every path that becomes valid in the local store after
 * it starts (with its closure, minus what this process already pushed and what the cache has).
 * Bursts (a build registering many paths) are pushed as one batch.
 */
export async function watchStoreCommand(argv: string[]): Promise<void> {
  runsLong();
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { ...PUSH_OPTIONS, interval: { type: "string" }, "nix-db": { type: "string" }, "include-drv": { type: "boolean" } },
  });
  if (positionals.length !== 1) throw new UsageError("usage: garret watch-store ALIAS:CACHE [-j N] [--interval SECONDS] [push options]");
  const interval = values.interval === undefined ? 1 : Number(values.interval);
  if (!(interval > 0 && interval <= 3600)) throw new UsageError("--interval must be a number of seconds, more than 0");
  const opts = pushOptionsFrom(values);
  const { api, cache, alias } = await resolveRemote(positionals[0], { caFile: values["ca-file"] });
  await api.getCache(cache); // fail now, not at the first build, if the cache is not there
  await rememberCache(alias, cache, true);

  const source = await openStoreSource(values["nix-db"] ?? NIX_DB);
  const mode = outputMode(values.json === true);
  const log = (line: string) => (mode === "json" ? process.stderr : process.stdout).write(`${line}\n`);
  log(`Watching ${source.kind} for new store paths to push to ${alias}:${cache} (Ctrl-C to stop)`);
  const stop = () => {
    source.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  const known = new Set<string>();
  const attempts = new Map<string, number>();
  let pending: string[] = [];
  let firstPendingAt = 0;
  let backoffUntil = 0;
  let backoff = 0;
  for (;;) {
    let fresh: string[] = [];
    try {
      fresh = (await source.next()).filter((p) => (values["include-drv"] || !p.endsWith(".drv")) && !known.has(p));
    } catch (err) {
      log(`✗ reading the store failed: ${(err as Error).message}`);
    }
    if (fresh.length > 0) {
      if (pending.length === 0) firstPendingAt = Date.now();
      pending.push(...fresh);
    }
    const settled = fresh.length === 0 || pending.length >= MAX_BATCH || Date.now() - firstPendingAt >= MAX_WAIT_MS;
    if (pending.length > 0 && settled && Date.now() >= backoffUntil) {
      const batch = [...new Set(pending)].filter((p) => !known.has(p));
      pending = [];
      const reporter = await pushReporter(mode, cache);
      try {
        const summary = await push(api, cache, batch, { ...opts, known, events: reporter.events });
        reporter.finish(summary);
        // Failed paths go back for another round, a few times.
        const retry = summary.failures.map((f) => f.path).filter((p) => batch.includes(p) && (attempts.get(p) ?? 0) < MAX_ATTEMPTS);
        for (const p of retry) attempts.set(p, (attempts.get(p) ?? 0) + 1);
        pending.push(...retry);
        backoff = retry.length > 0 ? Math.min(60000, Math.max(1000, backoff * 2)) : 0;
      } catch (err) {
        reporter.abort();
        log(`✗ pushing ${batch.length} new path(s) failed: ${(err as Error).message}`);
        // Paths deleted meanwhile make the closure query fail: keep only what is still valid.
        const { validPaths } = await import("../client/nix.ts");
        const still = await validPaths(batch).then((v) => v.valid, () => batch);
        pending.push(...still);
        backoff = Math.min(60000, Math.max(1000, backoff * 2));
      }
      if (pending.length > 0) firstPendingAt = Date.now();
      backoffUntil = Date.now() + backoff;
    }
    await Bun.sleep(interval * 1000);
  }
}
