/**
 * The one size grammar of garret, for flags and the config file alike: a number of bytes, or a
 * number with a unit. K, M, G, T (and KB, MB, ...) are powers of 1000; KiB, MiB, GiB, TiB powers
 * of 1024, as the units say.
 */
const UNITS: Record<string, number> = {
  "": 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2,
  g: 1e9, gb: 1e9, gib: 1024 ** 3, t: 1e12, tb: 1e12, tib: 1024 ** 4,
};

export const SIZE_HINT = "bytes or a size like 500MB, 10G, 10GiB";

/** Bytes in `text`; `key` (a flag or the full config key) names the setting in the error. */
export function parseSize(text: string, key: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new SizeError(`${key}: expected ${SIZE_HINT}; got ${JSON.stringify(text)}`);
  return Math.floor(Number(m[1]) * unit);
}

export class SizeError extends Error {}
