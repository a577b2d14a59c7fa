import type { MetaStore } from "../db/types.ts";
import { nowSeconds, uploadLeaseTtl } from "./config.ts";

/**
 * Runs an upload under a lease recorded in the database, renewed while it runs. The collector
 * never deletes a chunk that a live lease issued before the chunk was marked could still be
 * reusing, nor a pending pack younger than the oldest live lease (see src/gc/collect.ts).
 */
export async function withUploadLease<T>(meta: MetaStore, fn: () => Promise<T>, ttl = uploadLeaseTtl()): Promise<T> {
  const id = await meta.acquireUploadLease(nowSeconds(), ttl);
  const timer = setInterval(() => void meta.renewUploadLease(id, nowSeconds(), ttl).catch(() => {}), Math.max(0.2, ttl / 3) * 1000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    await meta.releaseUploadLease(id).catch(() => {});
  }
}
