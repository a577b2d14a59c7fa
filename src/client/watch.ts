import { Database } from "bun:sqlite";
import { NixCommandError } from "./nix.ts";

export const NIX_DB = "/nix/var/nix/db/db.sqlite";

/** Where new valid store paths come from; `next()` returns those registered since the last call. */
export interface StoreSource {
  readonly kind: string;
  next(): Promise<string[]>;
  close(): void;
}

/**
 * Polls Nix's own database, read-only: ValidPaths rows have increasing ids, so each poll is one
 * indexed query for the rows after the last id seen. Paths valid at start are not reported.
 */
export class NixDbSource implements StoreSource {
  readonly kind: string;
  private lastId: number;

  private constructor(private readonly db: Database, path: string) {
    this.kind = `the Nix database (${path})`;
    this.lastId = (db.query("SELECT max(id) AS id FROM ValidPaths").get() as { id: number | null }).id ?? 0;
  }

  static open(path = NIX_DB): NixDbSource {
    const db = new Database(path, { readonly: true });
    db.exec("PRAGMA busy_timeout = 5000");
    return new NixDbSource(db, path);
  }

  async next(): Promise<string[]> {
    const rows = this.db.query("SELECT id, path FROM ValidPaths WHERE id > ? ORDER BY id").all(this.lastId) as { id: number; path: string }[];
    if (rows.length > 0) this.lastId = rows[rows.length - 1]!.id;
    return rows.map((r) => r.path);
  }

  close(): void {
    this.db.close();
  }
}

/** The fallback when the database cannot be read: `nix path-info --all`, diffed against the last poll. */
export class PathInfoSource implements StoreSource {
  readonly kind = "nix path-info --all";
  private seen = new Set<string>();

  static async open(): Promise<PathInfoSource> {
    const s = new PathInfoSource();
    s.seen = new Set(await allPaths());
    return s;
  }

  async next(): Promise<string[]> {
    const now = await allPaths();
    const fresh = now.filter((p) => !this.seen.has(p));
    this.seen = new Set(now);
    return fresh;
  }

  close(): void {}
}

async function allPaths(): Promise<string[]> {
  const proc = Bun.spawn(["nix", "--extra-experimental-features", "nix-command", "--offline", "path-info", "--all"], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new NixCommandError(`nix path-info --all failed: ${err.trim().split("\n").pop()}`);
  return out.split("\n").filter(Boolean);
}

export async function openStoreSource(dbPath = NIX_DB): Promise<StoreSource> {
  try {
    return NixDbSource.open(dbPath);
  } catch {
    return PathInfoSource.open();
  }
}
