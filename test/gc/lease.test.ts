/**
 * Uploads that start close together share one upload lease (two metadata writes per burst, not
 * per upload). The collector's guarantee must hold for each of them: while any upload runs, a
 * live lease issued no later than its start is on record; once all are done, none is.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { openTestMetaStore, type TestDb } from "../helpers/db.ts";
import { withUploadLease } from "../../src/gc/lease.ts";
import { nowSeconds } from "../../src/gc/config.ts";
import { tempDir } from "../helpers/nix.ts";

function leases(open: () => TestDb): { id: number; started_at: number; expires_at: number }[] {
  const db = open();
  try {
    return db.query("SELECT id, started_at, expires_at FROM upload_leases ORDER BY id").all() as never;
  } finally {
    db.close();
  }
}

test("concurrent uploads share one live lease issued before each of them started; it goes with the last", async () => {
  const store = await openTestMetaStore();
  const { meta } = store;
  const path = store.db;
  const seen: { startedAt: number; live: ReturnType<typeof leases> }[] = [];
  const release: (() => void)[] = [];
  const uploads = Array.from({ length: 6 }, () => {
    const startedAt = nowSeconds();
    return withUploadLease(meta, async () => {
      seen.push({ startedAt, live: leases(path) });
      await new Promise<void>((r) => release.push(r));
    }, 30);
  });
  while (release.length < 6) await Bun.sleep(5);
  expect(leases(path)).toHaveLength(1);
  for (const s of seen) {
    expect(s.live).toHaveLength(1);
    expect(s.live[0]!.started_at).toBeLessThanOrEqual(s.startedAt);
    expect(s.live[0]!.expires_at).toBeGreaterThan(nowSeconds());
  }
  release.splice(0, 5).forEach((r) => r());
  await Bun.sleep(20);
  expect(leases(path)).toHaveLength(1); // one upload still holds it
  release.splice(0).forEach((r) => r());
  await Promise.all(uploads);
  expect(leases(path)).toHaveLength(0);
});

test("an upload starting a while after the current lease was issued takes a new one", async () => {
  const store = await openTestMetaStore();
  const { meta } = store;
  const path = store.db;
  let releaseFirst!: () => void;
  const first = withUploadLease(meta, () => new Promise<void>((r) => (releaseFirst = r)), 30);
  await Bun.sleep(1100);
  let during: ReturnType<typeof leases> = [];
  await withUploadLease(meta, async () => {
    during = leases(path);
  }, 30);
  expect(during).toHaveLength(2);
  expect(leases(path)).toHaveLength(1); // the second upload's lease went with it
  releaseFirst();
  await first;
  expect(leases(path)).toHaveLength(0);
});

test("a failing upload still gives its lease back", async () => {
  const store = await openTestMetaStore();
  const { meta } = store;
  const path = store.db;
  await expect(withUploadLease(meta, async () => {
    throw new Error("boom");
  }, 30)).rejects.toThrow("boom");
  expect(leases(path)).toHaveLength(0);
});
