/** The collector's decision rule (src/gc/retention.ts), on hand-made graphs. */
import { expect, test } from "bun:test";
import { selectEvictions } from "../../src/gc/retention.ts";
import type { GcObject, PinRecord } from "../../src/db/types.ts";

// Hashes are 32 characters; basenames are "<hash>-<name>".
const h = (c: string): string => c.repeat(32);
let nextId = 1;
function obj(c: string, lastAccessedAt: number, refs: string[] = [], fileSize = 100, narId?: number): GcObject {
  const id = nextId++;
  return { id, storePathHash: h(c), storePath: `/nix/store/${h(c)}-${c}`, references: refs.map((r) => `${h(r)}-${r}`), lastAccessedAt, narId: narId ?? id, fileSize };
}
const pin = (c: string): PinRecord => ({ name: c, storePathHash: h(c), storePath: `/nix/store/${h(c)}-${c}`, createdBy: null, createdAt: 0 });
const names = (objects: GcObject[], ids: Set<number>): string[] =>
  objects.filter((o) => ids.has(o.id)).map((o) => o.storePathHash[0]!).sort();

test("expiry follows the freshest referrer, through chains and shared dependencies", () => {
  // a -> b -> c, d -> c; a is fresh, d is stale; e stale alone; f self-referencing and stale.
  const objs = [obj("a", 100, ["b"]), obj("b", 1, ["c"]), obj("c", 1), obj("d", 1, ["c"]), obj("e", 1), obj("f", 1, ["f"])];
  expect(names(objs, selectEvictions(objs, [], { cutoff: 50, quotaBytes: null }))).toEqual(["d", "e", "f"]);
  expect(names(objs, selectEvictions(objs, [], { cutoff: null, quotaBytes: null }))).toEqual([]);
  // A pin keeps the stale d and (again) c.
  expect(names(objs, selectEvictions(objs, [pin("d")], { cutoff: 50, quotaBytes: null }))).toEqual(["e", "f"]);
  // References to paths the cache does not hold are ignored.
  const lone = [obj("g", 100, ["z"])];
  expect(names(lone, selectEvictions(lone, [], { cutoff: 50, quotaBytes: null }))).toEqual([]);
});

test("quota evicts least recently used closures with their referrers, never pinned ones", () => {
  // t1 -> d1 (t1 old), t2 -> d2 (newer), t3 newest; d1 was fetched recently but t1 was not.
  const objs = [obj("p", 1, ["q"]), obj("q", 1), obj("t", 10, ["d"]), obj("d", 40), obj("u", 20), obj("v", 30)];
  // 600 bytes held; quota 300: drop t (10), then u (20), then v (30) -> 300 left: p, q, d.
  const ids = selectEvictions(objs, [pin("p")], { cutoff: null, quotaBytes: 300 });
  expect(names(objs, ids)).toEqual(["t", "u", "v"]);
  // With a quota below what the pins need, only unpinned paths go.
  expect(names(objs, selectEvictions(objs, [pin("p")], { cutoff: null, quotaBytes: 0 }))).toEqual(["d", "t", "u", "v"]);
  // Evicting a dependency takes its referrers along: w (old, referenced by x which is older still).
  const chain = [obj("x", 1, ["w"]), obj("w", 2), obj("y", 50)];
  expect(names(chain, selectEvictions(chain, [], { cutoff: null, quotaBytes: 150 }))).toEqual(["w", "x"]);
});

test("a NAR shared by two objects of the cache counts once toward the quota", () => {
  const objs = [obj("a", 1, [], 100, 7), obj("b", 2, [], 100, 7), obj("c", 3, [], 100, 8)];
  expect(names(objs, selectEvictions(objs, [], { cutoff: null, quotaBytes: 200 }))).toEqual([]);
  expect(names(objs, selectEvictions(objs, [], { cutoff: null, quotaBytes: 100 }))).toEqual(["a", "b"]);
});
