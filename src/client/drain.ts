import { ApiError, type ApiClient } from "./api.ts";
import { validPaths } from "./nix.ts";
import { push, type PushOptions, type PushSummary } from "./push.ts";
import type { Spool, SpoolEntry } from "./spool.ts";

export interface DrainRound {
  /** Entries confirmed by the server and removed. */
  done: number;
  /** Entries dropped because the path is gone from the local store. */
  dropped: number;
  /** Entries that failed this round and stay queued. */
  failed: number;
  /** Entries held this round: their cache does not exist on the server (kept, not retried). */
  held: number;
  lastError: string | null;
  summaries: PushSummary[];
}

export interface DrainHooks {
  /** Resolves a queued `ALIAS:CACHE` to a client; throws when the alias is unknown. */
  resolve(target: string): Promise<{ api: ApiClient; cache: string }>;
  pushOptions: PushOptions;
  /** Per-push progress events (they name the cache). */
  eventsFor?(cache: string): PushOptions["events"];
  log(line: string): void;
}

/**
 * One pass over the spool: per target, pushes the queued paths (closures, only what the server
 * lacks) and deletes the entries the server confirmed. Nothing is deleted before that, so an
 * interrupted pass loses nothing; the next pass asks the server first, so nothing goes twice.
 */
export async function drainRound(spool: Spool, hooks: DrainHooks, limit = 5000): Promise<DrainRound> {
  const round: DrainRound = { done: 0, dropped: 0, failed: 0, held: 0, lastError: null, summaries: [] };
  const byTarget = new Map<string, SpoolEntry[]>();
  for (const e of spool.pending(limit)) byTarget.set(e.target, [...(byTarget.get(e.target) ?? []), e]);
  for (const [target, entries] of byTarget) {
    const fail = (list: SpoolEntry[], msg: string) => {
      spool.failed(list.map((e) => e.id), msg);
      round.failed += list.length;
      round.lastError = msg;
      hooks.log(`✗ ${list.length} queued path(s) for ${target}: ${msg}`);
    };
    let remote: { api: ApiClient; cache: string } | null = null;
    try {
      remote = await hooks.resolve(target);
      const { api, cache } = remote;
      const { valid, invalid } = await validPaths([...new Set(entries.map((e) => e.path))]);
      const gone = new Set(invalid);
      const dropped = entries.filter((e) => gone.has(e.path));
      if (dropped.length > 0) {
        spool.remove(dropped.map((e) => e.id));
        round.dropped += dropped.length;
        for (const e of dropped) hooks.log(`- ${e.path}: no longer in the local store, dropped from the queue`);
      }
      if (valid.length === 0) continue;
      const live = entries.filter((e) => !gone.has(e.path));
      const idOf = new Map(live.map((e) => [e.path, e.id]));
      const removed = new Set<number>();
      const events = hooks.eventsFor?.(cache) ?? hooks.pushOptions.events ?? {};
      const summary = await push(api, cache, valid, {
        ...hooks.pushOptions,
        events: {
          ...events,
          // Paths go up dependencies first, so an uploaded path's closure is on the server:
          // its entry can go at once, and a crash later does not redo it.
          uploaded: (p, a) => {
            events.uploaded?.(p, a);
            const id = idOf.get(p.path);
            if (id !== undefined) {
              spool.remove([id]);
              removed.add(id);
            }
          },
        },
      });
      round.summaries.push(summary);
      const failedPaths = new Set(summary.failures.map((f) => f.path));
      const ok = live.filter((e) => !failedPaths.has(e.path));
      spool.remove(ok.map((e) => e.id).filter((id) => !removed.has(id)));
      round.done += ok.length;
      const bad = live.filter((e) => failedPaths.has(e.path));
      if (bad.length > 0) fail(bad, summary.failures.find((f) => failedPaths.has(f.path))?.error ?? "push failed");
    } catch (err) {
      const still = new Set(spool.pending(limit).map((p) => p.id));
      const left = entries.filter((e) => still.has(e.id));
      // Retrying cannot create the cache: keep the entries, say so once, and leave them be.
      if (remote && err instanceof ApiError && err.error === "NoSuchCache") hold(spool, hooks, round, target, remote, left, err);
      else fail(left, (err as Error).message);
    }
  }
  return round;
}

/** Holds the entries of a target whose cache the server says does not exist, with one line naming it. */
function hold(spool: Spool, hooks: DrainHooks, round: DrainRound, target: string,
  { api, cache }: { api: ApiClient; cache: string }, list: SpoolEntry[], err: ApiError): void {
  const alias = target.includes(":") ? target.slice(0, target.indexOf(":")) : "the default server";
  const why = `cache ${JSON.stringify(cache)} does not exist on ${alias} (${api.base})`;
  spool.hold(list.map((e) => e.id), why);
  round.held += list.length;
  round.lastError = err.message;
  hooks.log(`✗ ${why}: ${list.length} queued path(s) for ${target} kept but not retried; `
    + `create the cache and drain again, or drop them: garret queue --remove ${list.map((e) => e.id).join(" ")}`);
}
