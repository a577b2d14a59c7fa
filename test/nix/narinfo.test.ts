import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NixFormatError } from "../../src/nix/errors.ts";
import { parseNarInfo, renderNarInfo, type NarInfo } from "../../src/nix/narinfo.ts";
import { buildPathsWithReference, removeDir, requireNix, run, tempDir } from "./nix-tool.ts";

const dir = tempDir("narinfo");
afterAll(() => removeDir(dir));

let paths: { top: string; dep: string };
let cacheDir: string;
const narinfoOf = (p: string): string => readFileSync(join(cacheDir, `${p.slice(11, 43)}.narinfo`), "utf8");

beforeAll(() => {
  requireNix();
  paths = buildPathsWithReference(dir);
  cacheDir = join(dir, "cache");
  run(["nix", "copy", "--to", `file://${cacheDir}?compression=zstd`, paths.top]);
});

test("nix is installed (required, never skipped)", () => {
  requireNix();
});

describe("narinfo written by nix copy", () => {
  test("parses, with references and deriver", () => {
    const text = narinfoOf(paths.top);
    const info = parseNarInfo(text);
    const pathInfo = JSON.parse(run(["nix", "path-info", "--json", paths.top]))[0];
    expect(info.storePath).toBe(paths.top);
    expect(info.compression).toBe("zstd");
    expect(info.url).toMatch(/^nar\/[0-9a-z]{52}\.nar\.zst$/);
    expect(info.url).toBe(`nar/${info.fileHash!.slice(7)}.nar.zst`);
    expect(info.fileSize).toBe(readFileSync(join(cacheDir, info.url)).length);
    expect(info.narSize).toBe(pathInfo.narSize);
    expect(info.narHash).toBe(`sha256:${run(["nix", "hash", "to-base32", pathInfo.narHash])}`);
    expect(info.references).toEqual([paths.dep.slice(11)]);
    expect(info.deriver).toBe(pathInfo.deriver.slice(11));
    expect(info.sigs).toEqual([]);
    expect(info.system).toBeUndefined(); // Nix 2.8's nix copy does not write System
    expect(info.ca).toBeUndefined();
  });

  test("renders back byte for byte, for every narinfo in the cache", () => {
    const files = readdirSync(cacheDir).filter((f) => f.endsWith(".narinfo"));
    expect(files.length).toBe(2);
    for (const f of files) {
      const text = readFileSync(join(cacheDir, f), "utf8");
      expect(renderNarInfo(parseNarInfo(text))).toBe(text);
    }
  });

  test("a path without references keeps the empty References line Nix writes", () => {
    const text = narinfoOf(paths.dep);
    expect(text).toContain("\nReferences: \n");
    expect(parseNarInfo(text).references).toEqual([]);
    expect(renderNarInfo(parseNarInfo(text))).toBe(text);
  });

  test("nix accepts a narinfo we render (substitution from the file cache)", () => {
    // Re-render with a System line and without FileHash/FileSize, then have nix read and check it.
    const text = narinfoOf(paths.top);
    const { fileHash: _h, fileSize: _s, ...rest } = parseNarInfo(text);
    const info: NarInfo = { ...rest, system: "x86_64-linux" };
    writeFileSync(join(cacheDir, `${paths.top.slice(11, 43)}.narinfo`), renderNarInfo(info));
    const out = JSON.parse(run(["nix", "path-info", "--json", "--store", `file://${cacheDir}`, paths.top]))[0];
    expect(out.path).toBe(paths.top);
    expect(out.narSize).toBe(info.narSize);
    expect(`sha256:${run(["nix", "hash", "to-base32", out.narHash])}`).toBe(info.narHash);
    // nix store verify --no-trust re-reads the NAR through our narinfo and checks its hash.
    run(["nix", "store", "verify", "--no-trust", "--store", `file://${cacheDir}`, paths.top]);
  });
});

const H1 = "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";
const BASE = [
  "StorePath: /nix/store/0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12",
  "URL: nar/1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s.nar.xz",
  "Compression: xz",
  `FileHash: ${H1}`,
  "FileSize: 123",
  `NarHash: ${H1}`,
  "NarSize: 456",
  "References: 0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12 9krlzvny65gdc8s7kpb6lkx8cd02c25b-glibc-2.35",
  "Deriver: 2c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12.drv",
  "System: x86_64-linux",
  "Sig: cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ==",
  "Sig: other:AAAA",
  "CA: fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
];
const text = (lines: string[]): string => lines.join("\n") + "\n";
const without = (key: string): string[] => BASE.filter((l) => !l.startsWith(`${key}:`));
const replace = (key: string, line: string): string[] => BASE.map((l) => (l.startsWith(`${key}:`) ? line : l));

describe("parseNarInfo", () => {
  test("all fields, and rendering is the identity", () => {
    const info = parseNarInfo(text(BASE));
    expect(info).toEqual({
      storePath: "/nix/store/0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12",
      url: "nar/1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s.nar.xz",
      compression: "xz", fileHash: H1, fileSize: 123, narHash: H1, narSize: 456,
      references: ["0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12", "9krlzvny65gdc8s7kpb6lkx8cd02c25b-glibc-2.35"],
      deriver: "2c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12.drv", system: "x86_64-linux",
      sigs: [BASE[10]!.slice(5), "other:AAAA"],
      ca: "fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
    } satisfies NarInfo);
    expect(renderNarInfo(info)).toBe(text(BASE));
  });

  test("minimal: Compression defaults to bzip2, optional fields absent", () => {
    const info = parseNarInfo(text([BASE[0]!, BASE[1]!, BASE[5]!, BASE[6]!]));
    expect(info.compression).toBe("bzip2");
    expect(info.references).toEqual([]);
    expect(info.fileHash).toBeUndefined();
    expect(info.fileSize).toBeUndefined();
    expect(info.deriver).toBeUndefined();
    expect(info.sigs).toEqual([]);
  });

  test("ignores unknown keys, tolerates a missing final newline", () => {
    const info = parseNarInfo(["X-Whatever: 1", ...BASE, "Foo: bar baz"].join("\n"));
    expect(renderNarInfo(info)).toBe(text(BASE));
  });

  test("normalises hex and SRI hashes to sha256:base32", () => {
    const hex = run(["nix", "hash", "to-base16", H1]);
    const sri = run(["nix", "hash", "to-sri", H1]);
    expect(parseNarInfo(text(replace("NarHash", `NarHash: sha256:${hex}`))).narHash).toBe(H1);
    expect(parseNarInfo(text(replace("FileHash", `FileHash: ${sri}`))).fileHash).toBe(H1);
  });

  test("unknown-deriver means none", () => {
    expect(parseNarInfo(text(replace("Deriver", "Deriver: unknown-deriver"))).deriver).toBeUndefined();
  });

  test("store dir comes from StorePath, or is enforced when given", () => {
    const other = BASE.map((l) => l.replace("/nix/store/", "/opt/store/"));
    expect(parseNarInfo(text(other)).storePath).toBe("/opt/store/0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12");
    expect(() => parseNarInfo(text(other), "/nix/store")).toThrow(NixFormatError);
  });

  const bad: [string, string][] = [
    ["no StorePath", text(without("StorePath"))],
    ["no URL", text(without("URL"))],
    ["empty URL", text(replace("URL", "URL: "))],
    ["no NarHash", text(without("NarHash"))],
    ["no NarSize", text(without("NarSize"))],
    ["bad StorePath", text(replace("StorePath", "StorePath: /nix/store/foo"))],
    ["StorePath with subpath", text(replace("StorePath", "StorePath: /nix/store/0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello/bin"))],
    ["md5 NarHash", text(replace("NarHash", "NarHash: md5:00000000000000000000000000000000"))],
    ["short NarHash", text(replace("NarHash", `NarHash: ${H1.slice(0, -1)}`))],
    ["NarHash overflow bits", text(replace("NarHash", `NarHash: sha256:z${H1.slice(8)}`))],
    ["bad FileHash", text(replace("FileHash", "FileHash: sha256:xyz"))],
    ["negative NarSize", text(replace("NarSize", "NarSize: -1"))],
    ["zero NarSize", text(replace("NarSize", "NarSize: 0"))],
    ["fractional NarSize", text(replace("NarSize", "NarSize: 1.5"))],
    ["hex NarSize", text(replace("NarSize", "NarSize: 0x10"))],
    ["huge NarSize", text(replace("NarSize", "NarSize: 99999999999999999999"))],
    ["NarSize with space", text(replace("NarSize", "NarSize:  12"))],
    ["bad FileSize", text(replace("FileSize", "FileSize: many"))],
    ["full path in References", text(replace("References", "References: /nix/store/0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12"))],
    ["bad reference", text(replace("References", "References: 0c4gxcxsqa1g5cmsnpyjlwxzndsbg9ql-hello-2.12 nope"))],
    ["bad Deriver", text(replace("Deriver", "Deriver: foo.drv"))],
    ["bad Sig", text(replace("Sig", "Sig: nocolon"))],
    ["bad CA", text(replace("CA", "CA: something"))],
    ["duplicate NarHash", text([...BASE, `NarHash: ${H1}`])],
    ["duplicate References", text([...BASE, "References: "])],
    ["line without colon", text([...BASE, "garbage"])],
    ["blank line", text([...BASE.slice(0, 3), "", ...BASE.slice(3)])],
    ["empty", ""],
  ];
  for (const [what, t] of bad) {
    test(`rejects ${what}`, () => {
      expect(() => parseNarInfo(t)).toThrow(NixFormatError);
    });
  }
});

test("renderNarInfo refuses values with line breaks", () => {
  const info = parseNarInfo(text(BASE));
  expect(() => renderNarInfo({ ...info, system: "x86_64-linux\nStorePath: /nix/store/evil" })).toThrow(NixFormatError);
  expect(() => renderNarInfo({ ...info, sigs: ["a:b\r"] })).toThrow(NixFormatError);
});
