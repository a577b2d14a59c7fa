/**
 * The one duration grammar of garret, for flags, GARRET_* variables and the config file alike:
 * a number of seconds, or a number with one unit: s, m, h, d, w, mo (30.44 days), y (365.24 days).
 * A month and a year are the Gregorian averages, as Attic's and Cachix's retention settings read them.
 */
const UNITS: Record<string, number> = {
  "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800, mo: 2629746, y: 31556952,
};

export const DURATION_HINT = "seconds or a duration like 30s, 15m, 12h, 7d, 2w, 3mo, 1y";

/** Seconds in `value`; `key` (the full key, e.g. gc.retention) names the setting in the error. */
export function parseDuration(value: string | number, key: string): number {
  if (typeof value === "number") {
    if (Number.isFinite(value) && value >= 0) return value;
    throw new DurationError(`${key}: expected ${DURATION_HINT}; got ${value}`);
  }
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w|mo|y)?$/.exec(value.trim().toLowerCase());
  if (!m) throw new DurationError(`${key}: expected ${DURATION_HINT}; got ${JSON.stringify(value)}`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? ""]!);
}

/** `seconds` in the largest unit (minutes and up) that divides it exactly, as parseDuration reads it back ("3mo"), else null. */
export function exactDuration(seconds: number): string | null {
  for (const unit of ["y", "mo", "w", "d", "h", "m"]) {
    const n = UNITS[unit]!;
    if (seconds > 0 && seconds % n === 0) return `${seconds / n}${unit}`;
  }
  return null;
}

export class DurationError extends Error {}
