/**
 * The stored bytes of recently served small NARs, kept in memory up to a byte budget, least
 * recently used first out. Pack files never change once written and a NAR's place in them is its
 * key, so an entry never goes stale: a NAR that moves (compaction) gets a new key.
 *
 * Why: a NAR served as a slice of its pack file went through the runtime's file response, which
 * opens, stats and reads the file on its thread pool for every request (several thread handoffs and
 * a fresh buffer each time: about half of the server's time per 100 KiB NAR). From memory the
 * response is written straight from memory, and on S3 a hot NAR costs no GET at all. Entries are
 * Blobs: a Response shares a Blob's bytes (and a range is a slice of it), where a Uint8Array body
 * is copied into every response.
 */
export class HotBytes {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  private readonly entries = new Map<string, Blob>();
  private held = 0;

  constructor(readonly capacity: number, readonly maxEntry: number) {}

  get(key: string): Blob | undefined {
    const v = this.entries.get(key);
    if (v) {
      this.entries.delete(key);
      this.entries.set(key, v);
    }
    return v;
  }

  /** Whether an entry of this many bytes would be kept. */
  fits(size: number): boolean {
    return size <= this.maxEntry && size <= this.capacity;
  }

  set(key: string, value: Blob): void {
    if (!this.fits(value.size) || this.entries.has(key)) return;
    this.held += value.size;
    this.entries.set(key, value);
    for (const [k, v] of this.entries) {
      if (this.held <= this.capacity) break;
      this.entries.delete(k);
      this.held -= v.size;
    }
  }

  /** Bytes held now. */
  get size(): number {
    return this.held;
  }
}

/** Default budget in MiB, overridden by GARRET_NAR_MEMORY_MIB (0 turns the cache off). */
export const DEFAULT_NAR_MEMORY_MIB = 64;
/** NARs larger than this are always served from storage. */
export const HOT_NAR_MAX = 1024 * 1024;
