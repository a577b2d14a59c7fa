import { afterAll, describe, expect, test } from "bun:test";
import { NixFormatError } from "../../src/nix/errors.ts";
import {
  DEFAULT_STORE_DIR, isValidStorePathHash, parseStorePath, parseStorePathBasename,
} from "../../src/nix/store-path.ts";
import { addUniqueFile, removeDir, requireNix, tempDir } from "./nix-tool.ts";

const HASH = "0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql"; // shape of a real store path digest
const dir = tempDir("storepath");
afterAll(() => removeDir(dir));

test("nix is installed (required, never skipped)", () => {
  requireNix();
});

describe("store paths made by nix-store --add", () => {
  test("parse, and their parts are consistent", () => {
    for (const name of ["hello.txt", "a", "with+plus=eq?q_u-d.ot", "N".repeat(200)]) {
      const path = addUniqueFile(dir, name);
      const sp = parseStorePath(path);
      expect(sp.storeDir).toBe(DEFAULT_STORE_DIR);
      expect(sp.name).toBe(name);
      expect(sp.path).toBe(path);
      expect(sp.basename).toBe(path.slice(DEFAULT_STORE_DIR.length + 1));
      expect(isValidStorePathHash(sp.hash)).toBe(true);
      expect(parseStorePathBasename(sp.basename)).toEqual(sp);
    }
  });

  test("Nix 2.8 itself makes names starting with '.', which garret rejects (SPEC §1)", () => {
    const path = addUniqueFile(dir, ".hidden");
    expect(path).toMatch(/^\/nix\/store\/[0-9a-z]{32}-\.hidden$/);
    expect(() => parseStorePath(path)).toThrow(/starts with '\.'/);
  });
});

describe("parseStorePath", () => {
  test("accepts the limits", () => {
    expect(parseStorePath(`/nix/store/${HASH}-${"a".repeat(211)}`).name.length).toBe(211);
    expect(parseStorePath(`/nix/store/${HASH}-x`).name).toBe("x");
    expect(parseStorePath(`/nix/store/${HASH}-x.`).name).toBe("x.");
    expect(parseStorePath(`/nix/store/${HASH}--`).name).toBe("-");
  });

  test("honours another store dir, with or without trailing slash", () => {
    const sp = parseStorePath(`/var/cache/store/${HASH}-foo`, "/var/cache/store/");
    expect(sp).toEqual({ storeDir: "/var/cache/store", hash: HASH, name: "foo", path: `/var/cache/store/${HASH}-foo`, basename: `${HASH}-foo` });
    expect(parseStorePathBasename(`${HASH}-foo`, "/var/cache/store").path).toBe(sp.path);
  });

  const bad: [string, string][] = [
    ["bad hash char e", `/nix/store/${HASH.slice(0, 31)}e-foo`],
    ["bad hash char uppercase", `/nix/store/${HASH.slice(0, 31).toUpperCase()}A-foo`],
    ["hash too short", `/nix/store/${HASH.slice(1)}-foo`],
    ["hash too long", `/nix/store/${HASH}0-foo`],
    ["no dash", `/nix/store/${HASH}foo`],
    ["empty name", `/nix/store/${HASH}-`],
    ["bare hash", `/nix/store/${HASH}`],
    ["name with /", `/nix/store/${HASH}-foo/bar`],
    ["path inside store object", `/nix/store/${HASH}-foo/bin/sh`],
    ["leading dot", `/nix/store/${HASH}-.foo`],
    ["dot dot", `/nix/store/${HASH}-..`],
    ["too long", `/nix/store/${HASH}-${"a".repeat(212)}`],
    ["space", `/nix/store/${HASH}-foo bar`],
    ["non-ascii", `/nix/store/${HASH}-fo\u00f6`],
    ["NUL", `/nix/store/${HASH}-foo\0`],
    ["newline", `/nix/store/${HASH}-foo\n`],
    ["wrong store dir", `/gnu/store/${HASH}-foo`],
    ["store dir prefix only", `/nix/storefoo/${HASH}-foo`],
    ["relative", `nix/store/${HASH}-foo`],
    ["double slash", `/nix/store//${HASH}-foo`],
    ["empty", ""],
  ];
  for (const [what, path] of bad) {
    test(`rejects ${what}`, () => {
      expect(() => parseStorePath(path)).toThrow(NixFormatError);
    });
  }

  test("basename parser rejects full paths and junk", () => {
    expect(() => parseStorePathBasename(`/nix/store/${HASH}-foo`)).toThrow(NixFormatError);
    expect(() => parseStorePathBasename(`${HASH}-foo/bar`)).toThrow(NixFormatError);
    expect(() => parseStorePathBasename("")).toThrow(NixFormatError);
  });

  test("relative store dir is refused", () => {
    expect(() => parseStorePath(`store/${HASH}-foo`, "store")).toThrow(NixFormatError);
  });
});

test("isValidStorePathHash", () => {
  expect(isValidStorePathHash(HASH)).toBe(true);
  expect(isValidStorePathHash(HASH.slice(1))).toBe(false);
  expect(isValidStorePathHash(`${HASH}0`)).toBe(false);
  expect(isValidStorePathHash(`${HASH.slice(1)}e`)).toBe(false);
  expect(isValidStorePathHash(`${HASH.slice(1)}/`)).toBe(false);
  expect(isValidStorePathHash("")).toBe(false);
});
