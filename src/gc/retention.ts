import type { GcObject, PinRecord } from "../db/types.ts";

export interface RetentionPolicy {
  /** Objects whose effective access time is older than this go; null keeps all (no expiry). */
  cutoff: number | null;
  /** Stored bytes the cache may keep; null = no quota. */
  quotaBytes: number | null;
}

const hashOf = (basename: string): string => basename.slice(0, 32);

/**
 * Decides which of a cache's objects go, closure-aware: an object's effective access time is the
 * latest access of any object whose closure (within this cache) contains it, and pinned paths
 * count as accessed forever. A dependency is therefore always at least as fresh as everything that
 * references it, so expiring by effective time never removes a dependency of a kept path.
 *
 * Quota: while the cache's distinct NARs exceed the quota, the least recently used unpinned
 * object goes together with every object that references it (they are no fresher, by the rule
 * above), so no kept path loses a reference either way.
 */
export function selectEvictions(objects: GcObject[], pins: PinRecord[], policy: RetentionPolicy): Set<number> {
  const byHash = new Map(objects.map((o) => [o.storePathHash, o]));
  const pinned = new Set(pins.map((p) => p.storePathHash));
  const seed = (o: GcObject): number => (pinned.has(o.storePathHash) ? Infinity : o.lastAccessedAt);

  // Visit in order of decreasing freshness: the first visit of a node carries its maximum.
  const effective = new Map<number, number>();
  for (const root of [...objects].sort((a, b) => seed(b) - seed(a))) {
    if (effective.has(root.id)) continue;
    const value = seed(root);
    const stack = [root];
    effective.set(root.id, value);
    while (stack.length > 0) {
      for (const ref of stack.pop()!.references) {
        const dep = byHash.get(hashOf(ref));
        if (dep && !effective.has(dep.id)) {
          effective.set(dep.id, value);
          stack.push(dep);
        }
      }
    }
  }

  const evict = new Set<number>();
  if (policy.cutoff !== null) {
    for (const o of objects) if (effective.get(o.id)! < policy.cutoff) evict.add(o.id);
  }
  if (policy.quotaBytes === null) return evict;

  // Stored size of what the cache keeps: each NAR once, however many objects share it.
  const narUsers = new Map<number, number>();
  let size = 0;
  for (const o of objects) {
    if (evict.has(o.id)) continue;
    const n = narUsers.get(o.narId) ?? 0;
    if (n === 0) size += o.fileSize;
    narUsers.set(o.narId, n + 1);
  }
  const referrers = referrerIndex(objects);
  const drop = (o: GcObject): void => {
    evict.add(o.id);
    const n = narUsers.get(o.narId)! - 1;
    narUsers.set(o.narId, n);
    if (n === 0) size -= o.fileSize;
  };
  const lru = objects.filter((o) => !evict.has(o.id) && effective.get(o.id)! !== Infinity)
    .sort((a, b) => effective.get(a.id)! - effective.get(b.id)!);
  for (const victim of lru) {
    if (size <= policy.quotaBytes) break;
    if (evict.has(victim.id)) continue;
    const stack = [victim];
    drop(victim);
    while (stack.length > 0) {
      for (const r of referrers.get(stack.pop()!.storePathHash) ?? []) {
        if (!evict.has(r.id)) {
          drop(r);
          stack.push(r);
        }
      }
    }
  }
  return evict;
}

/** Each object's direct referrers within the cache, by store path hash (self-references left out). */
export function referrerIndex(objects: GcObject[]): Map<string, GcObject[]> {
  const referrers = new Map<string, GcObject[]>();
  for (const o of objects) {
    for (const ref of o.references) {
      const h = hashOf(ref);
      if (h === o.storePathHash) continue;
      const list = referrers.get(h);
      if (list) list.push(o);
      else referrers.set(h, [o]);
    }
  }
  return referrers;
}

/**
 * Every object of the cache that references `storePathHash` (or any of several), directly or
 * through others; the roots themselves are left out. One index and one walk for all roots.
 */
export function referrerClosure(objects: GcObject[], storePathHash: string | Iterable<string>): GcObject[] {
  const index = referrerIndex(objects);
  const roots = new Set(typeof storePathHash === "string" ? [storePathHash] : storePathHash);
  const found = new Map<string, GcObject>();
  const stack = [...roots];
  while (stack.length > 0) {
    for (const r of index.get(stack.pop()!) ?? []) {
      if (roots.has(r.storePathHash) || found.has(r.storePathHash)) continue;
      found.set(r.storePathHash, r);
      stack.push(r.storePathHash);
    }
  }
  return [...found.values()];
}
