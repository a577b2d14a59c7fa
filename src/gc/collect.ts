import { randomUUID } from "node:crypto";
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ChunkMove, MetaStore } from "../db/types.ts";
import type { Storage, StorageWriter } from "../store/storage.ts";
import { decompressChunk } from "../store/compression.ts";
import { nowSeconds, type GcOptions } from "./config.ts";
import { selectEvictions } from "./retention.ts";

/**
 * The collector. Marks first, bytes after; every step is idempotent, so a crash anywhere is
 * repaired by the next run, and a storage delete that finds nothing counts as done.
 *
 *  0. NARs staged by native `nix copy` PUTs whose narinfo never came are dropped once expired:
 *     their records and leases go, and their own pending packs are marked for deletion at once,
 *     in one transaction that a commit publishing one of them cannot interleave with (whichever
 *     deletes the record first wins; the commit that finds it gone fails).
 *  1. Retention and quota, per cache, closure-aware (retention.ts), in one transaction each.
 *     get-missing-paths counts as an access, written at once: a push told that a dependency is
 *     present keeps it for a retention period (the closure holds unless the push takes longer),
 *     less the granularity of that record (an access newer than an hour, or than a 24th of the
 *     retention period, is not rewritten: src/cache/paths.ts).
 *  2. NARs no object references are deleted (metadata only, one statement).
 *  3. Chunks no NAR references are marked 'deleting' with mark_seq = the highest upload lease
 *     id issued so far.
 *  4. 'deleting' chunks are swept (rows deleted) once no lease with id <= mark_seq is live.
 *  5. Packs whose live bytes fall under the threshold are compacted: live chunks are copied to a
 *     new pack and, once it is durable, the index is switched in one transaction.
 *  6. Packs no chunk row points into, created before the oldest live upload, are marked
 *     'deleting' (a staged NAR may still commit chunks into a shared pack whose others are
 *     gone); so are pending packs (crash leftovers) created before the grace period and before
 *     the oldest live upload.
 *  7. Packs 'deleting' for longer than the grace period are deleted from storage, then forgotten.
 *  8. Local storage temp files (.tmp/*.part) older than the grace period and the oldest live
 *     upload are removed.
 *
 * Why an in-flight upload never loses a chunk it is about to reuse, with concurrent writers
 * (several replicas on one PostgreSQL database, or garret gc beside garret serve on SQLite).
 *
 * Decisions and their writes are atomic against commits. On SQLite one writer holds the database
 * at a time, so every transaction below sees a commit whole or not at all. On PostgreSQL the same
 * is built from locks (src/db/postgres.ts): every commitUpload takes a shared advisory
 * transaction lock GC_WRITE, and steps 2-4 and 6-7 (and relocateChunks) take it exclusively, so
 * such a step runs entirely before or after any commit on any replica, and each of its
 * statements reads what commits before it left. Expiry (step 1) takes a per-cache lock
 * exclusively; commits, pins and get-missing-paths into that cache take it shared, so a referrer
 * pushed, a pin added or an access recorded meanwhile is either seen by the decision or happens
 * after the delete (and then finds the path gone: the commit fails its reference check, the pin
 * is refused, the pusher is told the path is missing). Only one collector runs at a time across
 * all processes (gc_lock on SQLite; a PostgreSQL advisory session lock, released by the server
 * if its holder dies).
 *
 * The lease argument. An upload takes a lease (ids from an AUTOINCREMENT / identity sequence,
 * never reused, so "issued before" is an id comparison immune to clock skew between replicas)
 * and its insert commits before its first findChunks; findChunks only returns chunks in state
 * 'valid'. If it found chunk C, C was valid at that moment, so any later mark of C records
 * mark_seq >= the upload's lease id (step 3 reads the sequence's high-water mark, which covers
 * every committed lease); step 4 leaves C's row alone while that lease is live, on whichever
 * replica it was taken. commitUpload, in the transaction that references C, flips a 'deleting' C
 * back to 'valid'; step 4 cannot interleave with it (GC_WRITE / SQLite's writer lock). Pack bytes
 * go only after no chunk row points into the pack (steps 6-7), so a chunk row that exists always
 * has its bytes. A NAR the commit reuses is looked up inside the commit transaction (two commits
 * of one NAR meet on its unique key: the second waits and reuses the first's row), and step 2
 * cannot run in between, so the commit sees it whole or not at all. The upload's own pending
 * packs are younger than its lease, so step 6 does not take them. A replica that dies stops
 * renewing its leases; once they expire its pending packs are leftovers for step 6. If a lease
 * ever lapses while its upload still runs (a process stalled past the TTL), the commit finds a
 * missing chunk or pack and fails; it never makes a path visible over missing bytes (it may
 * leave its own pack file behind, unrecorded). A NAR staged by a native PUT holds a lease of its
 * own from before its ingest looked up a chunk until its narinfo commits it (or a new PUT of the
 * same file replaces it, or it expires), so the same argument covers the time between the two
 * PUTs, on any replica. Chunks fsck marked damaged are never marked
 * 'deleting', so a commit never revives one; once unreferenced they go at once. Compaction only
 * rewrites where a chunk lives, and the old pack outlives the switch by the grace period, so
 * readers on any replica that looked up chunk locations before the switch finish.
 */

export interface GcReport {
  dry_run: boolean;
  objects: number;
  nars: number;
  chunks: number;
  packs: number;
  compacted: number;
  /** Staged NARs (native PUTs) dropped because their narinfo never came. */
  staged: number;
  leftovers: number;
  bytes: number;
}

export interface GcDeps {
  meta: MetaStore;
  storage: Storage;
  /** Local storage's temp directory, when storage is local. */
  tmpDir?: string;
}

export interface GcRunOptions extends Omit<GcOptions, "interval"> {
  dryRun?: boolean;
  log?: (line: string) => void;
  /** Compaction writes new packs up to about this size. */
  packSizeLimit?: number;
}

export class GcBusyError extends Error {}

const LOCK_TTL = 600;

export async function collectGarbage(deps: GcDeps, opts: GcRunOptions): Promise<GcReport> {
  const holder = `${process.pid}-${randomUUID()}`;
  if (!(await deps.meta.lockGc(holder, nowSeconds(), LOCK_TTL))) {
    throw new GcBusyError("another garbage collection is running");
  }
  try {
    const dryRun = opts.dryRun ?? false;
    const renew = () => deps.meta.lockGc(holder, nowSeconds(), LOCK_TTL);
    // A dry run works on the rollback-only transaction handle, never on the store itself.
    return dryRun
      ? await deps.meta.simulate((meta) => runSteps({ ...deps, meta }, opts, dryRun, renew))
      : await runSteps(deps, opts, dryRun, renew);
  } finally {
    await deps.meta.unlockGc(holder);
  }
}

async function runSteps(deps: GcDeps, opts: GcRunOptions, dryRun: boolean, renew: () => Promise<boolean>): Promise<GcReport> {
  const { meta, storage } = deps;
  const log = opts.log ?? (() => {});
  const report: GcReport = { dry_run: dryRun, objects: 0, nars: 0, chunks: 0, packs: 0, compacted: 0, staged: 0, leftovers: 0, bytes: 0 };
  const now = nowSeconds();

  // 0. Expired staging.
  report.staged = await meta.expireStagedNars(now);

  // 1. Retention and quotas.
  for (const cache of await meta.listCaches()) {
    const period = cache.retentionPeriod ?? opts.defaultRetention;
    const cutoff = period > 0 ? now - period : null;
    if (cutoff === null && cache.quotaBytes === null) continue;
    report.objects += await meta.expireObjects(cache.id, (objects, pins) =>
      selectEvictions(objects, pins, { cutoff, quotaBytes: cache.quotaBytes }));
  }
  // 2-4. NARs, then chunks.
  report.nars = await meta.deleteUnreferencedNars();
  await meta.markUnreferencedChunks();
  const swept = await meta.sweepChunks(now);
  report.chunks = swept.count;

  // 5. Compaction.
  let written = 0;
  if (opts.compactThreshold > 0) {
    const c = await compact(deps, opts, dryRun, renew, log);
    report.compacted = c.packs;
    written = c.written;
    if (c.packs > 0) log(`gc: compacted ${c.packs} pack(s) into ${c.written} bytes`);
  }

  // 6-7. Packs.
  await meta.markEmptyPacks(now);
  await meta.markStalePendingPacks(now - opts.grace, now);
  for (const pack of await meta.packsToDelete(now - opts.grace)) {
    if (!dryRun) await storage.delete(pack.key); // a missing object counts as deleted
    await meta.forgetDeletedPack(pack.id);
    report.packs++;
    // The recorded size: no storage round trip, so a dry run (which holds the database's write
    // lock throughout) stays short. A crashed upload's pending pack records 0; on local storage
    // its bytes are the temp file counted in step 8.
    report.bytes += pack.size;
  }
  report.bytes -= written;

  // 8. Temp files of crashed writes (local storage only).
  if (deps.tmpDir) {
    const oldest = await meta.oldestLiveLease(now);
    const before = Math.min(now - opts.grace, oldest ?? Infinity) * 1000;
    let names: string[] = [];
    try {
      names = await readdir(deps.tmpDir);
    } catch {
      // no temp dir: nothing to clean
    }
    for (const name of names) {
      if (!name.endsWith(".part")) continue;
      const path = join(deps.tmpDir, name);
      const st = await stat(path).catch(() => null);
      if (!st || st.mtimeMs >= before) continue;
      if (!dryRun) await rm(path, { force: true });
      report.leftovers++;
      report.bytes += st.size;
    }
  }
  return report;
}

interface OutPack {
  id: number;
  writer: StorageWriter | null;
  size: number;
  moves: Map<number, ChunkMove[]>;
}

/**
 * Copies the verified live chunks of sparse packs into new packs. In a dry run nothing is read
 * or written, but the index switch still happens (inside the rolled-back transaction), so the
 * later steps count exactly what a real run would free.
 */
async function compact(
  deps: GcDeps, opts: GcRunOptions, dryRun: boolean, renew: () => Promise<boolean>, log: (l: string) => void,
): Promise<{ packs: number; written: number }> {
  const { meta, storage } = deps;
  const limit = opts.packSizeLimit ?? 64 * 1024 * 1024;
  let out: OutPack | null = null;
  let packs = 0;
  let written = 0;

  const open = async (): Promise<OutPack> => {
    const key = `packs/${randomUUID()}.pack`;
    const id = await meta.createPendingPack(key);
    return { id, writer: dryRun ? null : await storage.createWriter(key), size: 0, moves: new Map() };
  };
  const seal = async (o: OutPack): Promise<void> => {
    if (o.writer) await o.writer.commit();
    // The index switches only once the new pack is durable; the switch also seals the pack.
    for (const [from, moves] of o.moves) await meta.relocateChunks({ id: o.id, size: o.size }, from, moves);
    written += o.size;
  };

  try {
    for (const pack of await meta.compactionCandidates(opts.compactThreshold)) {
      await renew();
      const moves: ChunkMove[] = [];
      let complete = true;
      for (const c of await meta.packLiveChunks(pack.id)) {
        out ??= await open();
        if (out.writer) {
          try {
            const bytes = await storage.read(pack.key, { offset: c.offset, length: c.storedSize });
            const plain = await decompressChunk(bytes, c.compression);
            const hash = new Bun.CryptoHasher("sha256").update(plain).digest("hex");
            if (hash !== c.hash || plain.length !== c.size) throw new Error("hash mismatch");
            await out.writer.write(bytes);
          } catch (err) {
            // Damaged bytes stay where they are, for fsck to report; the pack stays too.
            log(`gc: chunk ${c.hash} in ${pack.key} could not be verified (${(err as Error).message}); left in place`);
            complete = false;
            continue;
          }
        }
        moves.push({ chunkId: c.id, fromOffset: c.offset, toOffset: out.size });
        out.size += c.storedSize;
      }
      if (out && moves.length > 0) out.moves.set(pack.id, moves);
      if (complete) packs++;
      if (out && out.size >= limit) {
        await seal(out);
        out = null;
      }
    }
    if (out) {
      const last: OutPack = out;
      out = null;
      if (last.size > 0) await seal(last);
      else {
        await last.writer?.abort();
        await meta.forgetPack(last.id);
      }
    }
  } catch (err) {
    const o = out as OutPack | null;
    if (o?.writer) await o.writer.abort().catch(() => {});
    throw err;
  }
  return { packs, written };
}
