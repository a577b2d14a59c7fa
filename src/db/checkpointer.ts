/**
 * Moves SQLite's WAL checkpoints off the serving thread. By default the connection that commits
 * the 1000th page since the last checkpoint copies the log into the database file and fsyncs both,
 * inside that commit: on the one thread that answers every request, a stall of milliseconds each
 * time. A push of 50 small paths at -j 8 ran 11% faster with no checkpoints at all, and 6% faster
 * with them on this worker (A/B, scripts/bench/ab.ts).
 *
 * Here a worker thread with a connection of its own runs PASSIVE checkpoints (they never block
 * readers or writers) when the serving thread reports that enough transactions have committed, or
 * once it has gone quiet. The serving connection keeps an automatic checkpoint ten times further
 * out, so the log stays bounded even if the worker falls behind or fails.
 */
export interface Checkpointer {
  /** Called after each write transaction of the serving connection. */
  committed(): void;
  /** Ends the worker (a checkpoint cut short is safe: SQLite resumes it on the next one). */
  stop(): void;
}

/** Pages after which the serving connection still checkpoints by itself (SQLite's default: 1000). */
export const SAFETY_NET_PAGES = 10_000;
/** Write transactions between two background checkpoints (a small upload's commit is 5-20 pages). */
const COMMITS_PER_CHECKPOINT = 50;
/** A quiet spell after which what was written since the last checkpoint is checkpointed. */
const QUIET_MS = 200;

// The worker is built from this source at run time (a Blob URL), so the single executable needs no
// second entry point.
const WORKER_SOURCE = `
import { Database } from "bun:sqlite";
let db = null;
self.onmessage = (e) => {
  const m = e.data;
  try {
    if (m.open) {
      db = new Database(m.open);
      db.exec("PRAGMA busy_timeout = 5000");
    } else if (m.checkpoint && db) {
      db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
    }
    postMessage({ done: m.id });
  } catch (err) {
    postMessage({ done: m.id, error: String(err && err.message || err) });
  }
};`;

export function startCheckpointer(dbPath: string, log: (line: string) => void = () => {}): Checkpointer {
  const worker = new Worker(URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" })));
  worker.unref();
  let nextId = 0;
  let since = 0;
  let busy = false;
  let again = false;
  let quiet: ReturnType<typeof setTimeout> | null = null;
  const waiting = new Map<number, () => void>();
  let reported = false;

  worker.onmessage = (e: MessageEvent<{ done: number; error?: string }>) => {
    if (e.data.error && !reported) {
      reported = true; // once: the serving connection's own checkpoints still keep the log bounded
      log(`checkpointer: ${e.data.error}`);
    }
    waiting.get(e.data.done)?.();
    waiting.delete(e.data.done);
  };
  const send = (m: Record<string, unknown>): Promise<void> =>
    new Promise((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      worker.postMessage({ ...m, id });
    });

  const checkpoint = (): void => {
    since = 0;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    void send({ checkpoint: true }).then(() => {
      busy = false;
      if (again) {
        again = false;
        checkpoint();
      }
    });
  };

  void send({ open: dbPath });
  return {
    committed() {
      if (++since >= COMMITS_PER_CHECKPOINT) checkpoint();
      if (quiet) clearTimeout(quiet);
      quiet = setTimeout(() => {
        quiet = null;
        if (since > 0) checkpoint();
      }, QUIET_MS);
      quiet.unref();
    },
    stop() {
      if (quiet) clearTimeout(quiet);
      worker.terminate();
    },
  };
}
