/**
 * A client-wide upload bandwidth cap (`--limit-rate`), shared by all parallel uploads: each chunk
 * waits for its slot in a virtual schedule, so the total rate never exceeds the limit.
 */
export class RateLimiter {
  private next = 0;

  constructor(readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new Error("rate must be positive");
  }

  async take(bytes: number): Promise<void> {
    const now = performance.now();
    const start = Math.max(now, this.next);
    this.next = start + (bytes * 1000) / this.bytesPerSecond;
    if (start - now >= 1) await Bun.sleep(start - now);
  }

  /** A pass-through stream paced by this limiter (chunks split to at most 64 KiB). */
  transform(): TransformStream<Uint8Array, Uint8Array> {
    return new TransformStream<Uint8Array, Uint8Array>({
      transform: async (chunk, controller) => {
        for (let off = 0; off < chunk.length; off += 65536) {
          const part = chunk.subarray(off, off + 65536);
          await this.take(part.length);
          controller.enqueue(part);
        }
      },
    });
  }
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };

/** Parses a rate such as `20M`, `20MiB`, `500k` or `1048576` (bytes per second, binary units like curl). */
export function parseRate(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*?)(?:\/s)?\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit ? Number(m[1]) * unit : NaN;
  if (!(n >= 1)) throw new Error(`invalid rate ${JSON.stringify(text)}: use e.g. 500K, 20M or 1G (bytes per second)`);
  return Math.floor(n);
}
