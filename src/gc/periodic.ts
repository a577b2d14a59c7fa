import { join } from "node:path";
import type { ServerConfig } from "../config.ts";
import type { Garret, GcRunRecord } from "../cache/context.ts";
import { AccessTracker } from "./access.ts";
import { collectGarbage, GcBusyError } from "./collect.ts";

/** Flags of garret serve that belong to the collector. */
export const SERVE_GC_OPTIONS = {
  "gc-interval": { type: "string" }, retention: { type: "string" }, "gc-grace": { type: "string" },
} as const;

/**
 * Inside garret serve: batched access tracking, and a collection every `interval` seconds
 * (0 = never). A run that finds another collection holding the lock skips its turn.
 */
export function startCollector(g: Garret & { access: AccessTracker }, config: ServerConfig, log: (line: string) => void): { stop(): Promise<void> } {
  const opts = config.gc;
  const access = g.access;
  access.start();
  const tmpDir = config.storage.type === "local" ? join(config.storage.path, ".tmp") : undefined;
  let running: Promise<void> | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;

  const runOnce = async (): Promise<void> => {
    try {
      await access.flush();
      const r = await collectGarbage({ meta: g.meta, storage: g.storage, tmpDir }, {
        ...opts, packSizeLimit: g.ingest.packSizeLimit, log,
      });
      g.metrics?.gcRuns.inc({ result: "ok" });
      remember(g, { at: Math.floor(Date.now() / 1000), result: "ok", freedBytes: Math.max(0, r.bytes), objects: r.objects, chunks: r.chunks, packs: r.packs });
      g.metrics?.gcFreedBytes.inc({}, Math.max(0, r.bytes));
      for (const kind of ["objects", "nars", "chunks", "packs", "staged", "leftovers"] as const) g.metrics?.gcRemoved.inc({ kind }, r[kind]);
      if (r.objects + r.nars + r.chunks + r.packs + r.leftovers > 0) {
        log(`gc: removed ${r.objects} objects, ${r.nars} NARs, ${r.chunks} chunks, ${r.packs} packs (${r.compacted} compacted), ${r.leftovers} leftovers; freed ${r.bytes} bytes`);
      }
    } catch (err) {
      g.metrics?.gcRuns.inc({ result: err instanceof GcBusyError ? "busy" : "failed" });
      if (!(err instanceof GcBusyError)) {
        log(`gc: failed: ${(err as Error).message}`);
        remember(g, { at: Math.floor(Date.now() / 1000), result: "failed", freedBytes: 0, objects: 0, chunks: 0, packs: 0 });
      }
    }
  };
  if (opts.interval > 0) {
    timer = setInterval(() => {
      if (!running) running = runOnce().finally(() => (running = null));
    }, opts.interval * 1000);
    timer.unref?.();
  }
  return {
    async stop() {
      if (timer) clearInterval(timer);
      access.stop();
      await running;
      await access.flush().catch(() => {});
    },
  };
}

/** Keeps the last 10 runs for the dashboard's server page. */
function remember(g: Garret, run: GcRunRecord): void {
  // The context is frozen: the list is made with it (absent: nothing to record into).
  const runs = g.gcRuns;
  if (!runs) return;
  runs.push(run);
  if (runs.length > 10) runs.shift();
}
