/**
 * The server's WAL checkpoints run on a worker thread (src/db/checkpointer.ts): the serving
 * connection stops checkpointing by itself until the log is ten times SQLite's default, and what it
 * commits still reaches the database file soon after a burst ends.
 */
import { expect, test } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { SqliteMetaStore } from "../../src/db/sqlite.ts";
import { SAFETY_NET_PAGES } from "../../src/db/checkpointer.ts";
import { tempDir } from "../helpers/nix.ts";

const newCache = (name: string) => ({
  name, isPublic: true, storeDir: "/nix/store", priority: 41, upstreamCacheKeyNames: [], signingKey: "k:x",
  retentionPeriod: null, quotaBytes: null,
});

/** Frames in the log and how many of them are in the database file (a checkpoint with nothing left to copy only reports). */
function walState(path: string): { log: number; checkpointed: number } {
  const db = new Database(path);
  try {
    return db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as { log: number; checkpointed: number };
  } finally {
    db.close();
  }
}

test("a burst of commits is checkpointed by the worker, not by the serving connection", async () => {
  const path = join(tempDir("garret-ckpt-"), "garret.db");
  const meta = new SqliteMetaStore(path);
  try {
    meta.checkpointInBackground();
    const before = statSync(path).size;
    // Each cache is a transaction of its own: well under the serving connection's own threshold.
    for (let i = 0; i < 120; i++) await meta.createCache(newCache(`c${i}`));
    const cache = (await meta.getCache("c0"))!;
    await meta.touchObjects(cache.id, ["0".repeat(32)], 1); // a counted write: arms the quiet-time checkpoint
    expect(statSync(path).size).toBe(before); // nothing copied yet: the serving connection did not checkpoint
    let grown = false;
    for (let t = 0; t < 50 && !grown; t++) {
      await Bun.sleep(100);
      grown = statSync(path).size > before;
    }
    expect(grown).toBe(true); // the worker copied the log into the database file
    const s = walState(path);
    expect(s.checkpointed).toBe(s.log);
  } finally {
    meta.close();
  }
});

test("the serving connection still checkpoints by itself, ten times further out", () => {
  const path = join(tempDir("garret-ckpt-"), "garret.db");
  const meta = new SqliteMetaStore(path);
  try {
    meta.checkpointInBackground();
    // The setting is per connection: read it through the store's own.
    const own = (meta as unknown as { db: Database }).db.query("PRAGMA wal_autocheckpoint").get() as { wal_autocheckpoint: number };
    expect(own.wal_autocheckpoint).toBe(SAFETY_NET_PAGES);
  } finally {
    meta.close();
  }
});
