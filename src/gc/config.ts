/**
 * Collector settings. Flags win over GARRET_* environment variables, which win over defaults.
 * Durations are seconds, or a number with a unit: 30s, 15m, 12h, 7d.
 */
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

export interface GcFlags {
  retention?: string;
  grace?: string;
  compactThreshold?: string;
  interval?: string;
}

const UNITS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400 };

export function parseDuration(value: string, key: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd]?)$/.exec(value.trim());
  if (!m) throw new Error(`${key}: expected seconds or a duration like 30s, 15m, 12h, 7d; got ${JSON.stringify(value)}`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

/**
 * `file` is the `[gc]` table of the config file: keys retention, grace, compact-threshold,
 * interval (numbers are seconds, strings durations).
 */
export function gcOptions(flags: GcFlags = {}, env = process.env, file: Record<string, unknown> = {}): GcOptions {
  const fileKey: Record<string, string> = {
    GARRET_RETENTION: "retention", GARRET_GC_GRACE: "grace", GARRET_GC_COMPACT_THRESHOLD: "compact-threshold",
    GARRET_GC_INTERVAL: "interval",
  };
  const pick = (flag: string | undefined, name: string): string | undefined => {
    if (flag !== undefined) return flag;
    if (env[name] !== undefined && env[name] !== "") return env[name];
    const v = file[fileKey[name]!];
    return v === undefined ? undefined : String(v);
  };
  const duration = (flag: string | undefined, name: string, key: string, dflt: number): number => {
    const v = pick(flag, name);
    return v === undefined || v === "" ? dflt : parseDuration(v, key);
  };
  const threshold = pick(flags.compactThreshold, "GARRET_GC_COMPACT_THRESHOLD");
  const t = threshold === undefined || threshold === "" ? DEFAULT_GC.compactThreshold : Number(threshold);
  if (!Number.isFinite(t) || t < 0 || t > 1) throw new Error(`compact-threshold: expected a fraction 0..1, got ${JSON.stringify(threshold)}`);
  return {
    defaultRetention: duration(flags.retention, "GARRET_RETENTION", "retention", DEFAULT_GC.defaultRetention),
    grace: duration(flags.grace, "GARRET_GC_GRACE", "gc-grace", DEFAULT_GC.grace),
    compactThreshold: t,
    interval: duration(flags.interval, "GARRET_GC_INTERVAL", "gc-interval", DEFAULT_GC.interval),
  };
}

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
