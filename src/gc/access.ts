import type { ServingStore } from "../db/types.ts";
import { nowSeconds } from "./config.ts";

/**
 * Records narinfo and NAR fetches in memory and writes them in one transaction every few
 * seconds, so a busy cache does not write to the database on every request. An access lost in
 * a crash only makes retention a few seconds more eager.
 */
export class AccessTracker {
  private pending = new Map<number, Set<string>>();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly meta: ServingStore, private readonly intervalSeconds: number) {}

  start(): void {
    if (this.timer || this.intervalSeconds <= 0) return;
    this.timer = setInterval(() => void this.flush().catch(() => {}), this.intervalSeconds * 1000);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  record(cacheId: number, storePathHash: string): void {
    if (this.intervalSeconds <= 0) {
      void this.meta.touchObjects(cacheId, [storePathHash], nowSeconds()).catch(() => {});
      return;
    }
    let set = this.pending.get(cacheId);
    if (!set) this.pending.set(cacheId, (set = new Set()));
    set.add(storePathHash);
  }

  async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const at = nowSeconds();
    for (const [cacheId, hashes] of batch) await this.meta.touchObjects(cacheId, [...hashes], at);
  }
}
