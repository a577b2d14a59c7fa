import type { ApiClient } from "../client/api.ts";
import { drainRound } from "../client/drain.ts";
import type { PushOptions } from "../client/push.ts";
import type { Spool } from "../client/spool.ts";
import { lineReporter } from "./progress.ts";
import { resolveRemote } from "./remote.ts";
import { CliError } from "./errors.ts";

/** A worker gives held entries another try every this many intervals (capped at 10 minutes). */
const HELD_RETRY_INTERVALS = 100;

export interface WorkerOptions {
  /** --worker: run until killed; --drain: until the queue is empty (or stuck). */
  forever: boolean;
  intervalMs: number;
  pushOptions: PushOptions;
  caFile?: string;
  json: boolean;
}

/**
 * `garret queue --drain` / `--worker`: uploads what the spool holds. One process at a time drains
 * a spool (a dead holder is replaced). A worker backs off exponentially while pushes fail (server
 * down) and polls for new entries every interval; a drain stops when the queue is empty, and fails
 * when a whole round made no progress.
 */
export async function runWorker(spool: Spool, opts: WorkerOptions): Promise<void> {
  const held = spool.acquireWorker();
  if (!held.ok) {
    if (opts.forever) throw new CliError(`another worker (pid ${held.holder}) is draining ${spool.path}`);
    process.stdout.write(`A worker (pid ${held.holder}) is draining ${spool.path}; it will upload the queue.\n`);
    return;
  }
  const release = () => {
    try {
      spool.releaseWorker();
    } catch {
      // the lock is reclaimed from a dead pid anyway
    }
  };
  const onSignal = () => {
    release();
    process.exit(0);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const log = (line: string) => (opts.json ? process.stderr : process.stdout).write(`${line}\n`);
  const remotes = new Map<string, Promise<{ api: ApiClient; cache: string }>>();
  const hooks = {
    resolve: (target: string) => {
      if (!remotes.has(target)) {
        const p = resolveRemote(target, { caFile: opts.caFile });
        p.catch(() => remotes.delete(target)); // an unknown alias may be logged in later
        remotes.set(target, p);
      }
      return remotes.get(target)!;
    },
    pushOptions: opts.pushOptions,
    eventsFor: (cache: string) => lineReporter(opts.json ? "json" : "plain", cache).events,
    log,
  };
  // Held entries (their cache did not exist) get one more try in each new run, and in a worker
  // every HELD_RETRY_INTERVALS intervals (10 minutes at most): the cache may have been created.
  spool.releaseHeld();
  let heldReleasedAt = Date.now();
  const heldRetryMs = Math.min(600_000, opts.intervalMs * HELD_RETRY_INTERVALS);
  const maxBackoff = Math.min(60000, opts.intervalMs * 32);
  let backoff = 0;
  const total = { done: 0, dropped: 0 };
  try {
    for (;;) {
      if (opts.forever && Date.now() - heldReleasedAt >= heldRetryMs) {
        heldReleasedAt = Date.now();
        if (spool.releaseHeld() > 0) remotes.clear(); // the cache's record is looked up again
      }
      if (spool.count() === 0) {
        if (!opts.forever) break;
        await Bun.sleep(opts.intervalMs);
        continue;
      }
      const round = await drainRound(spool, hooks);
      total.done += round.done;
      total.dropped += round.dropped;
      if (round.failed === 0) {
        backoff = 0;
        continue;
      }
      if (!opts.forever && round.done === 0) {
        throw new CliError(`${spool.count()} path(s) still queued after a failed round: ${round.lastError}`);
      }
      backoff = backoff === 0 ? opts.intervalMs : Math.min(maxBackoff, backoff * 2);
      log(`… ${spool.count()} path(s) still queued; next try in ${(backoff / 1000).toFixed(1)} s`);
      await Bun.sleep(backoff);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    release();
  }
  const stillHeld = spool.heldCount();
  if (opts.json) process.stdout.write(`${JSON.stringify({ ...total, held: stillHeld, remaining: spool.count() })}\n`);
  else log(`Queue drained: ${total.done} queued path(s) pushed, ${total.dropped} dropped${stillHeld ? `, ${stillHeld} held` : ""}`);
  if (stillHeld > 0) {
    throw new CliError(`${stillHeld} path(s) held in the queue because their cache does not exist; see garret queue --list, drop them with garret queue --remove ID...`);
  }
}
