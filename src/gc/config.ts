/**
 * Collector settings. Flags win over GARRET_* environment variables, which win over defaults.
 * Read by serverConfig (src/config.ts) from `[gc]`, GARRET_* and the flags of serve and gc.
 */
import { parseDuration } from "../duration.ts";

export interface GcOptions {
  /** Retention of caches whose retention_period is "Global"; 0 keeps forever. */
  defaultRetention: number;
  /** How old crash leftovers must be before they go, and how long a pack outlives its last chunk. */
  grace: number;
  /** A pack whose live bytes fall under this fraction of its size is compacted; 0 disables. */
  compactThreshold: number;
  /** Seconds between collections inside garret serve; 0 = off. */
  interval: number;
}

export const DEFAULT_GC: GcOptions = { defaultRetention: 0, grace: 3600, compactThreshold: 0.5, interval: 3600 };

/** How often batched access times are written (GARRET_ACCESS_FLUSH_INTERVAL, seconds). */
export function accessFlushInterval(env = process.env): number {
  const v = env.GARRET_ACCESS_FLUSH_INTERVAL;
  return v ? parseDuration(v, "GARRET_ACCESS_FLUSH_INTERVAL") : 5;
}

/** Lifetime of an upload lease without renewal (GARRET_UPLOAD_LEASE_TTL, seconds). */
export function uploadLeaseTtl(env = process.env): number {
  const v = env.GARRET_UPLOAD_LEASE_TTL;
  return v ? parseDuration(v, "GARRET_UPLOAD_LEASE_TTL") : 600;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);
