import { expect, test } from "bun:test";
import { HotBytes } from "../../src/store/hot-bytes.ts";

const b = (n: number): Blob => new Blob([new Uint8Array(n)]);

test("keeps entries up to its budget and lets the least recently used go first", () => {
  const h = new HotBytes(300, 200);
  h.set("a", b(100));
  h.set("b", b(100));
  h.set("c", b(100));
  expect(h.size).toBe(300);
  expect(h.get("a")).toBeDefined(); // a is now the most recently used
  h.set("d", b(100)); // over budget: b, the least recently used, goes
  expect(h.get("b")).toBeUndefined();
  expect([h.get("a"), h.get("c"), h.get("d")].every(Boolean)).toBe(true);
  expect(h.size).toBe(300);
});

test("an entry larger than the per-entry limit or the budget is not kept; a budget of 0 keeps nothing", () => {
  const h = new HotBytes(300, 200);
  h.set("big", b(201));
  expect(h.get("big")).toBeUndefined();
  const none = new HotBytes(0, 200);
  none.set("a", b(1));
  expect(none.get("a")).toBeUndefined();
  expect(none.size).toBe(0);
});

test("setting a key again keeps the first value and counts it once", () => {
  const h = new HotBytes(300, 200);
  const first = b(50);
  h.set("a", first);
  h.set("a", b(60));
  expect(h.get("a")).toBe(first);
  expect(h.size).toBe(50);
});
