import type { IngestStore } from "../db/types.ts";
import { nowSeconds, uploadLeaseTtl } from "./config.ts";

/**
 * A lease recorded in the database and renewed while any upload holding it runs. The collector
 * never deletes a chunk that a live lease issued before the chunk was marked could still be
 * reusing, nor a pending pack younger than the oldest live lease (see src/gc/collect.ts).
 */
interface Lease {
  id: Promise<number>;
  issuedAt: number;
  holders: number;
  timer: ReturnType<typeof setInterval> | null;
}

/**
 * Uploads that start within JOIN_SECONDS of each other share one lease: two database writes per
 * burst instead of two per upload. Sharing is safe because an upload only ever joins a lease
 * issued before it started: for the collector that is the same as the upload having taken its
 * lease earlier, which only makes it more careful. Leases still turn over under steady load, so
 * the collector is never held off for longer than an upload plus JOIN_SECONDS.
 */
const JOIN_SECONDS = 1;

class LeasePool {
  private current: Lease | null = null;

  constructor(private readonly meta: IngestStore, private readonly ttl: number) {}

  private join(): Lease {
    const now = nowSeconds();
    const c = this.current;
    if (c && now - c.issuedAt < JOIN_SECONDS) {
      c.holders++;
      return c;
    }
    const lease: Lease = { id: this.meta.acquireUploadLease(now, this.ttl), issuedAt: now, holders: 1, timer: null };
    lease.id.then((id) => {
      if (lease.holders === 0) return;
      lease.timer = setInterval(() => void this.meta.renewUploadLease(id, nowSeconds(), this.ttl).catch(() => {}),
        Math.max(0.2, this.ttl / 3) * 1000);
    }, () => {});
    this.current = lease;
    return lease;
  }

  private async leave(lease: Lease): Promise<void> {
    if (--lease.holders > 0) return;
    if (this.current === lease) this.current = null;
    if (lease.timer) clearInterval(lease.timer);
    await this.meta.releaseUploadLease(await lease.id).catch(() => {});
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const lease = this.join();
    try {
      await lease.id; // the lease must be on record before the upload looks up a chunk
    } catch (err) {
      await this.leave(lease).catch(() => {});
      if (this.current === lease) this.current = null;
      throw err;
    }
    try {
      return await fn();
    } finally {
      await this.leave(lease);
    }
  }
}

const pools = new WeakMap<IngestStore, Map<number, LeasePool>>();

// Read once per second at most, not from the environment on every upload.
let ttlCache: { value: number; at: number } | null = null;
function defaultTtl(): number {
  const at = performance.now();
  if (!ttlCache || at - ttlCache.at > 1000) ttlCache = { value: uploadLeaseTtl(), at };
  return ttlCache.value;
}

/** Runs an upload under a live upload lease (shared with the uploads that started just before it). */
export async function withUploadLease<T>(meta: IngestStore, fn: () => Promise<T>, ttl = defaultTtl()): Promise<T> {
  let byTtl = pools.get(meta);
  if (!byTtl) pools.set(meta, (byTtl = new Map()));
  let pool = byTtl.get(ttl);
  if (!pool) byTtl.set(ttl, (pool = new LeasePool(meta, ttl)));
  return pool.run(fn);
}

/** A lease of one's own, renewed while held (a native PUT's staged NAR holds one past its request). */
export interface HeldLease {
  id: number;
  /** Stops renewing: the staged record's expiry, which the lease is set to, rules from now on. */
  keep(): void;
  release(): Promise<void>;
}

export async function holdLease(meta: IngestStore, ttl: number): Promise<HeldLease> {
  const id = await meta.acquireUploadLease(nowSeconds(), ttl);
  const timer = setInterval(() => void meta.renewUploadLease(id, nowSeconds(), ttl).catch(() => {}), Math.max(0.2, ttl / 3) * 1000);
  timer.unref?.();
  return {
    id,
    keep: () => clearInterval(timer),
    async release() {
      clearInterval(timer);
      await meta.releaseUploadLease(id).catch(() => {});
    },
  };
}
