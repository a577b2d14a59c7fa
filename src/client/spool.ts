import { Database } from "bun:sqlite";
import { mkdirSync, readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join } from "node:path";

/**
 * The client's state dir (the push queue lives here): GARRET_STATE_DIR, else
 * $XDG_STATE_HOME/garret, else ~/.local/state/garret.
 */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GARRET_STATE_DIR) return env.GARRET_STATE_DIR;
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME !== "" ? env.XDG_STATE_HOME : join(homedir(), ".local", "state");
  return join(base, "garret");
}

export interface SpoolEntry {
  id: number;
  target: string;
  path: string;
  queuedAt: number;
  attempts: number;
  lastError: string | null;
  /**
   * Why drains skip the entry, e.g. its cache does not exist on the server; null when it is
   * drained normally. Each new drain run tries held entries once more.
   */
  held: string | null;
}

type Row = { id: number; target: string; path: string; queued_at: number; attempts: number; last_error: string | null; held: string | null };
const entryOf = (r: Row): SpoolEntry => ({
  id: r.id, target: r.target, path: r.path, queuedAt: r.queued_at, attempts: r.attempts, lastError: r.last_error, held: r.held,
});
const COLUMNS = "id, target, path, queued_at, attempts, last_error, held";

/**
 * The durable push queue: a small SQLite database (WAL, synchronous=FULL, so a committed entry is
 * on disk before `garret queue` returns). One row per (target, path): queuing a path twice is a
 * no-op. Rows are deleted only after the server confirmed the path, so a killed worker loses
 * nothing, and the next one asks the server what is missing before sending anything again.
 */
export class Spool {
  private constructor(private readonly db: Database, readonly path: string) {}

  static open(dir = stateDir()): Spool {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, "queue.db");
    const db = new Database(path, { create: true });
    db.exec("PRAGMA busy_timeout = 10000");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec(`CREATE TABLE IF NOT EXISTS queue (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      target TEXT NOT NULL,
      path TEXT NOT NULL,
      queued_at INTEGER NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      last_error TEXT,
      UNIQUE (target, path)
    )`);
    // Spools written before entries could be held lack the column.
    const cols = db.query("PRAGMA table_info(queue)").all() as { name: string }[];
    if (!cols.some((c) => c.name === "held")) db.exec("ALTER TABLE queue ADD COLUMN held TEXT");
    db.exec(`CREATE TABLE IF NOT EXISTS worker (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      pid INTEGER NOT NULL,
      host TEXT NOT NULL,
      started_at INTEGER NOT NULL
    )`);
    return new Spool(db, path);
  }

  /**
   * Appends paths for `target` in one transaction; returns how many were new. Queuing a held
   * entry again releases it (the cache may exist by now).
   */
  enqueue(target: string, paths: string[]): number {
    const insert = this.db.prepare("INSERT OR IGNORE INTO queue (target, path, queued_at) VALUES (?, ?, ?)");
    const release = this.db.prepare("UPDATE queue SET held = NULL WHERE target = ? AND path = ? AND held IS NOT NULL");
    const now = Date.now();
    return this.db.transaction(() => paths.reduce((n, p) => {
      const added = insert.run(target, p, now).changes;
      if (added === 0) release.run(target, p);
      return n + added;
    }, 0))();
  }

  /** Entries to drain (not held), oldest first. */
  pending(limit = 10000): SpoolEntry[] {
    return (this.db.query(`SELECT ${COLUMNS} FROM queue WHERE held IS NULL ORDER BY id LIMIT ?`).all(limit) as Row[]).map(entryOf);
  }

  /** Every entry, held ones too (for --list). */
  entries(limit = 1_000_000): SpoolEntry[] {
    return (this.db.query(`SELECT ${COLUMNS} FROM queue ORDER BY id LIMIT ?`).all(limit) as Row[]).map(entryOf);
  }

  /** Entries to drain (held ones are not counted). */
  count(): number {
    return (this.db.query("SELECT count(*) AS n FROM queue WHERE held IS NULL").get() as { n: number }).n;
  }

  heldCount(): number {
    return (this.db.query("SELECT count(*) AS n FROM queue WHERE held IS NOT NULL").get() as { n: number }).n;
  }

  /** Keeps entries queued but out of the drains (until the next drain run, or until queued again). */
  hold(ids: number[], why: string): void {
    const upd = this.db.prepare("UPDATE queue SET attempts = attempts + 1, last_error = ?, held = ? WHERE id = ?");
    this.db.transaction(() => ids.forEach((id) => upd.run(why, why, id)))();
  }

  /** A new drain run gives held entries one more try: the cache may have been created meanwhile. */
  releaseHeld(): number {
    return this.db.prepare("UPDATE queue SET held = NULL WHERE held IS NOT NULL").run().changes;
  }

  /**
   * `garret queue --remove`: drops entries by id or by store path (a path queued for several
   * caches goes from each). Returns how many went, and the specs that matched nothing.
   */
  removeEntries(specs: string[]): { removed: number; unmatched: string[] } {
    const byId = this.db.prepare("DELETE FROM queue WHERE id = ?");
    const byPath = this.db.prepare("DELETE FROM queue WHERE path = ?");
    return this.db.transaction(() => {
      let removed = 0;
      const unmatched: string[] = [];
      for (const spec of specs) {
        const n = /^\d+$/.test(spec) ? byId.run(Number(spec)).changes : byPath.run(spec.replace(/\/+$/, "")).changes;
        if (n === 0) unmatched.push(spec);
        removed += n;
      }
      return { removed, unmatched };
    })();
  }

  /** Forgets entries the server confirmed (or that can never be pushed). */
  remove(ids: number[]): void {
    const del = this.db.prepare("DELETE FROM queue WHERE id = ?");
    this.db.transaction(() => ids.forEach((id) => del.run(id)))();
  }

  /** Records a failed attempt; the entries stay queued. */
  failed(ids: number[], error: string): void {
    const upd = this.db.prepare("UPDATE queue SET attempts = attempts + 1, last_error = ? WHERE id = ?");
    this.db.transaction(() => ids.forEach((id) => upd.run(error, id)))();
  }

  /**
   * Becomes the one process draining this spool. A holder that is no longer running (killed,
   * crashed, rebooted) is replaced. Returns the pid of a live holder instead when there is one.
   */
  acquireWorker(pid = process.pid): { ok: true } | { ok: false; holder: number } {
    return this.db.transaction(() => {
      const row = this.db.query("SELECT pid, host FROM worker WHERE id = 1").get() as { pid: number; host: string } | null;
      if (row && row.pid !== pid && row.host === hostname() && isQueueWorker(row.pid)) return { ok: false as const, holder: row.pid };
      this.db.prepare("INSERT OR REPLACE INTO worker (id, pid, host, started_at) VALUES (1, ?, ?, ?)").run(pid, hostname(), Date.now());
      return { ok: true as const };
    }).immediate();
  }

  releaseWorker(pid = process.pid): void {
    this.db.prepare("DELETE FROM worker WHERE id = 1 AND pid = ?").run(pid);
  }

  close(): void {
    this.db.close();
  }
}

/** Whether `pid` is a live `garret queue --drain/--worker` (not some process that reused the pid). */
function isQueueWorker(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return args.includes("queue") && (args.includes("--worker") || args.includes("--drain"));
  } catch {
    return true; // no /proc: trust the pid
  }
}
