/** Token exchange never grants more than the caller's token (src/auth/permissions.ts narrowClaims). */
import { expect, test } from "bun:test";
import { narrowClaims, permissionFor, type CachePermissionClaims } from "../../src/auth/permissions.ts";

const NAMES = ["a", "a-x", "a-y", "b", "ci-1", "other"];
const LETTERS = ["pull", "push", "delete", "createCache", "configureCache", "configureCacheRetention", "destroyCache"] as const;

function neverWider(orig: CachePermissionClaims, patterns: string[] | null, pullOnly = false): void {
  const narrowed = narrowClaims(orig, patterns, pullOnly);
  for (const name of NAMES) {
    const before = permissionFor(orig, name);
    const after = permissionFor(narrowed, name);
    for (const l of LETTERS) if (after[l]) expect({ name, l, before: before[l] }).toEqual({ name, l, before: true });
    if (pullOnly) expect(LETTERS.filter((l) => l !== "pull" && after[l])).toEqual([]);
  }
}

test("globs, exact names and their order never widen", () => {
  const cases: CachePermissionClaims[] = [
    { "a-*": { r: 1 }, "*": { r: 1, w: 1 } },
    { "*": { w: 1 }, "a-*": { r: 1, w: 1, d: 1 } },
    { "a-x": { d: 1 }, "a-*": { r: 1, w: 1 } },
    { "*": { r: 1, w: 1, cc: 1 } },
  ];
  const requests: (string[] | null)[] = [null, ["a-*"], ["*"], ["a-x"], ["a-*", "*"], ["b", "ci-*"]];
  for (const c of cases) for (const r of requests) for (const p of [false, true]) neverWider(c, r, p);
});

test("what it keeps", () => {
  expect(narrowClaims({ "*": { r: 1, w: 1 } }, ["ci-1"], false)).toEqual({ "ci-1": { r: 1, w: 1 } });
  expect(narrowClaims({ "*": { r: 1, w: 1 } }, ["ci-1"], true)).toEqual({ "ci-1": { r: 1 } });
  expect(narrowClaims({ "a-x": { d: 1 }, "a-*": { r: 1 } }, ["a-*"], false)).toEqual({ "a-x": { d: 1 }, "a-*": { r: 1 } });
  // A glob the token does not hold is not granted.
  expect(narrowClaims({ "a-*": { r: 1 } }, ["*"], false)).toEqual({});
});
