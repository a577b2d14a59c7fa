import { Database } from "bun:sqlite";
import { lstatSync, readdirSync } from "node:fs";
import { NIX_DB, NixCommandError, storeDir, validPaths } from "./nix.ts";

export { NIX_DB };

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

/** A directory entry that names a store path: `<32-character hash>-<name>` (not `.links`, not temporaries). */
const STORE_ENTRY = /^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;
/** Nix sets every registered store path's mtime to 1 s after the epoch; a build's output gets it just before it is registered. */
const CANONICAL_MTIME_MS = 1000;
/** How many paths one `nix path-info` is asked about (its command line stays short). */
const VALIDITY_BATCH = 500;

/**
 * The fallback when the database cannot be read: the store directory's entries, diffed against the
 * last poll. One readdir of a store of 70 000 paths (140 000 entries with their .drv files) took
 * 0.1 s where `nix path-info --all` took 10 s, longer than a poll; and only new entries whose mtime
 * Nix has canonicalised are asked of Nix. An entry not valid yet (a build's output before it is
 * registered, a lock file) is looked at again at each poll until it is valid or gone.
 */
export class StoreDirSource implements StoreSource {
  readonly kind: string;
  private seen: Set<string>;
  private waiting = new Set<string>();

  constructor(private readonly dir = storeDir()) {
    this.kind = `the store directory (${dir})`;
    this.seen = new Set(this.entries());
  }

  async next(): Promise<string[]> {
    const now = new Set(this.entries());
    const candidates = [...this.waiting].filter((n) => now.has(n));
    for (const n of now) if (!this.seen.has(n)) candidates.push(n);
    this.seen = now;
    this.waiting = new Set(candidates.filter((n) => !this.canonical(n)));
    const ask = candidates.filter((n) => !this.waiting.has(n)).map((n) => `${this.dir}/${n}`);
    const fresh: string[] = [];
    for (let i = 0; i < ask.length; i += VALIDITY_BATCH) {
      let answer;
      try {
        answer = await validPaths(ask.slice(i, i + VALIDITY_BATCH));
      } catch (err) {
        for (const p of ask.slice(i)) this.waiting.add(p.slice(this.dir.length + 1)); // asked again next poll
        throw err;
      }
      fresh.push(...answer.valid);
      for (const p of answer.invalid) this.waiting.add(p.slice(this.dir.length + 1));
    }
    return fresh;
  }

  close(): void {}

  private entries(): string[] {
    return readdirSync(this.dir).filter((n) => STORE_ENTRY.test(n));
  }

  private canonical(name: string): boolean {
    try {
      return lstatSync(`${this.dir}/${name}`).mtimeMs === CANONICAL_MTIME_MS;
    } catch {
      return false; // gone meanwhile
    }
  }
}

export async function openStoreSource(dbPath = NIX_DB): Promise<StoreSource> {
  try {
    return NixDbSource.open(dbPath);
  } catch {
    try {
      return new StoreDirSource();
    } catch (err) {
      // One line for the user: neither place to watch can be read (no Nix here, or no rights).
      throw new NixCommandError(`cannot read the Nix database (${dbPath}) nor the store directory (${storeDir()}): `
        + `${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; is Nix installed, and may this user read its store?`);
    }
  }
}
