import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NixFormatError } from "../../src/nix/errors.ts";
import { MAX_NAR_PATH, MAX_NAR_STRING, NarValidator } from "../../src/nix/nar.ts";
import { nar, NarWriter, type NarNode } from "./nar-writer.ts";
import { removeDir, requireNix, runBytes, runRaw, tempDir } from "./nix-tool.ts";

const dir = tempDir("nar");
afterAll(() => removeDir(dir));

/** Small seeded PRNG so a failing random split can be reproduced from the printed seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function validate(chunks: Iterable<Uint8Array>): void {
  const v = new NarValidator();
  for (const c of chunks) v.push(c);
  v.finish();
}
const whole = (b: Uint8Array): void => validate([b]);
function* bytewise(b: Uint8Array): Generator<Uint8Array> {
  for (let i = 0; i < b.length; i++) yield b.subarray(i, i + 1);
}
function* randomSplits(b: Uint8Array, rand: () => number, maxPiece: number): Generator<Uint8Array> {
  let p = 0;
  while (p < b.length) {
    const k = Math.floor(rand() * (maxPiece + 1)); // zero-length pushes included on purpose
    yield b.subarray(p, p + k);
    p += k;
  }
}
/** Feeds in every way the tests use and requires each to reject with a message matching re. */
function expectRejected(b: Uint8Array, re: RegExp): void {
  expect(() => whole(b)).toThrow(re);
  expect(() => validate(bytewise(b))).toThrow(re);
  expect(() => validate(randomSplits(b, prng(b.length), 13))).toThrow(re);
}
/** What Nix 2.8 itself says about an archive: does `nix-store --restore` take it? */
function nixRestores(b: Uint8Array): boolean {
  const d = tempDir("restore");
  try {
    return runRaw(["nix-store", "--restore", join(d, "out")], b).code === 0;
  } finally {
    removeDir(d);
  }
}

// The real archives: nix-store --dump of things made on disk.
const dumps: Record<string, Uint8Array> = {};

beforeAll(() => {
  requireNix();
  const root = join(dir, "tree");
  mkdirSync(join(root, "sub", "nested", "deeper"), { recursive: true });
  mkdirSync(join(root, "emptydir"));
  writeFileSync(join(root, "empty"), "");
  writeFileSync(join(root, "small.txt"), "hello\n");
  writeFileSync(join(root, "eight"), "12345678");
  writeFileSync(join(root, "exec.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(join(root, "exec.sh"), 0o755);
  writeFileSync(join(root, "big.bin"), crypto.getRandomValues(new Uint8Array(65536)).subarray(0, 65531));
  writeFileSync(join(root, "sub", "nested", "deeper", "file"), "deep");
  for (const n of ["B", "a", "a-b", "a.b", "ab", "\u00e9", "z~", "_", ".dot"]) writeFileSync(join(root, "sub", n), n);
  symlinkSync("small.txt", join(root, "link"));
  symlinkSync("/nonexistent/dangling/target", join(root, "dangling"));
  symlinkSync("../..", join(root, "sub", "nested", "up"));
  const dump = (p: string): Uint8Array => runBytes(["nix-store", "--dump", p]);
  dumps.tree = dump(root);
  dumps.file = dump(join(root, "small.txt"));
  dumps.emptyFile = dump(join(root, "empty"));
  dumps.executable = dump(join(root, "exec.sh"));
  dumps.symlink = dump(join(root, "link"));
  dumps.emptyDir = dump(join(root, "emptydir"));
  dumps.big = dump(join(root, "big.bin"));
});

test("nix is installed (required, never skipped)", () => {
  requireNix();
});

describe("archives made by nix-store --dump", () => {
  test("validate whole", () => {
    expect(Object.keys(dumps).length).toBe(7);
    for (const b of Object.values(dumps)) whole(b);
  });

  test("validate fed one byte at a time", () => {
    for (const b of Object.values(dumps)) validate(bytewise(b));
  });

  test("validate in random splits", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rand = prng(seed);
      for (const [name, b] of Object.entries(dumps)) {
        const max = [3, 9, 17, 100, 5000][seed % 5]!;
        try {
          validate(randomSplits(b, rand, max));
        } catch (e) {
          throw new Error(`${name}, seed ${seed}: ${(e as Error).message}`);
        }
      }
    }
  });

  test("our test writer reproduces nix-store --dump exactly (so its negative cases are realistic)", () => {
    expect(nar({ type: "regular", contents: "hello\n" })).toEqual(dumps.file!);
    expect(nar({ type: "regular", contents: "" })).toEqual(dumps.emptyFile!);
    expect(nar({ type: "regular", executable: true, contents: "#!/bin/sh\necho hi\n" })).toEqual(dumps.executable!);
    expect(nar({ type: "symlink", target: "small.txt" })).toEqual(dumps.symlink!);
    expect(nar({ type: "directory", entries: [] })).toEqual(dumps.emptyDir!);
  });

  test("every truncation is rejected, by finish() and never earlier", () => {
    for (const b of Object.values(dumps)) {
      for (let len = 0; len < b.length; len++) {
        const v = new NarValidator();
        v.push(b.subarray(0, len));
        expect(() => v.finish()).toThrow(/truncated NAR/);
      }
    }
  });
});

const file = (contents: string): NarNode => ({ type: "regular", contents });
const dirOf = (...names: string[]): Uint8Array => nar({ type: "directory", entries: names.map((n) => [n, file(n)]) });

describe("rejects malformed archives", () => {
  test("bad magic", () => {
    expectRejected(new NarWriter().str("nix-archive-2").node(file("x")).bytes(), /bad magic/);
    expectRejected(new NarWriter().node(file("x")).bytes(), /bad magic|too long|too large/);
    expectRejected(new TextEncoder().encode("hello world, not a NAR at all"), /bad magic|too long|too large/);
  });

  test("empty input", () => {
    expect(() => validate([])).toThrow(/truncated NAR: ended at byte 0/);
  });

  test("trailing garbage (Nix 2.8's restore ignores it; garret must not)", () => {
    const b = Buffer.concat([dumps.file!, new Uint8Array([0])]);
    expectRejected(b, new RegExp(`trailing data after the end of the NAR at byte ${dumps.file!.length}`));
    expectRejected(Buffer.concat([dumps.file!, dumps.file!]), /trailing data/);
    expect(nixRestores(b)).toBe(true);
  });

  test("non-zero padding, with its offset", () => {
    const pad = new Uint8Array(7);
    pad[6] = 1;
    const b = new NarWriter().str("nix-archive-1").str("(").str("type").str("regular").str("contents").str("x", pad).str(")").bytes();
    // magic 24, "(" 16, "type" 16, "regular" 16, "contents" 16 → token at 88: length 8, "x", 6 zeros, then the 1.
    expectRejected(b, /non-zero padding byte at 103 \(token at 88\)/);
    expect(nixRestores(b)).toBe(false);
  });

  test("non-zero padding in the magic", () => {
    const b = new NarWriter().str("nix-archive-1", new Uint8Array([0, 0, 9])).node(file("x")).bytes();
    expectRejected(b, /non-zero padding byte at 23/);
  });

  test("unsorted and duplicate entries (Nix 2.8's restore does not check order)", () => {
    expectRejected(dirOf("b", "a"), /not strictly ascending.*"a" after "b"/);
    expectRejected(dirOf("a", "a"), /not strictly ascending/);
    expectRejected(dirOf("ab", "a"), /not strictly ascending/);
    expectRejected(dirOf("a", "B"), /not strictly ascending/); // bytes: 'B' (0x42) < 'a' (0x61)
    expectRejected(dirOf("\u00e9", "z"), /not strictly ascending/); // UTF-8 0xc3 sorts after ASCII
    whole(dirOf("B", "a", "a-b", "a.b", "ab", "z", "\u00e9"));
    expect(nixRestores(dirOf("b", "a"))).toBe(true);
    // Ordering is per directory: the same names in sibling directories are fine.
    whole(nar({ type: "directory", entries: [
      ["x", { type: "directory", entries: [["m", file("1")], ["n", file("2")]] }],
      ["y", { type: "directory", entries: [["a", file("1")], ["m", file("2")]] }],
    ] }));
    expectRejected(nar({ type: "directory", entries: [
      ["x", { type: "directory", entries: [["m", file("1")], ["n", file("2")]] }],
      ["y", { type: "directory", entries: [["b", file("1")], ["a", file("2")]] }],
    ] }), /"a" after "b"/);
  });

  test("bad entry names", () => {
    for (const [name, re] of [["", /empty entry name/], [".", /"\." or "\.\."/], ["..", /"\." or "\.\."/], ["a/b", /contains '\/'/], ["/", /contains '\/'/], ["a\0b", /contains NUL/]] as const) {
      expectRejected(dirOf(name), re);
      if (name !== "a\0b") expect(nixRestores(dirOf(name))).toBe(false);
    }
    whole(dirOf("..."));
    whole(dirOf(".a"));
  });

  test("over-long names and symlink targets", () => {
    whole(dirOf("n".repeat(MAX_NAR_STRING)));
    expectRejected(dirOf("n".repeat(MAX_NAR_STRING + 1)), /too long for an entry name/);
    whole(nar({ type: "symlink", target: "t".repeat(MAX_NAR_STRING) }));
    expectRejected(nar({ type: "symlink", target: "t".repeat(MAX_NAR_STRING + 1) }), /too long for a symlink target/);
  });

  test("symlink target with NUL (Nix 2.8 restores it truncated, changing the hash)", () => {
    expectRejected(nar({ type: "symlink", target: "a\0b" }), /contains NUL/);
  });

  test("deep nesting is fine until the path inside the archive exceeds the cap", () => {
    const deep = (levels: number, name: string): NarNode => {
      let n: NarNode = file("leaf");
      for (let i = 0; i < levels; i++) n = { type: "directory", entries: [[name, n]] };
      return n;
    };
    whole(nar(deep(MAX_NAR_PATH / 2, "d"))); // "d/d/.../d" = 4095 bytes
    expectRejected(nar(deep(MAX_NAR_PATH / 2 + 1, "d")), /path inside the NAR exceeds/);
  });

  test("grammar violations", () => {
    const W = (): NarWriter => new NarWriter().str("nix-archive-1");
    const cases: [string, Uint8Array, RegExp][] = [
      ["unknown type", W().str("(").str("type").str("fifo").str(")").bytes(), /expected "regular", "symlink" or "directory" at byte 56, got "fifo"/],
      ["missing (", W().str("type").str("regular").bytes(), /expected "\("/],
      ["regular without contents", W().str("(").str("type").str("regular").str(")").bytes(), /expected "executable" or "contents"/],
      ["executable with a value", W().str("(").str("type").str("regular").str("executable").str("x").str("contents").str("").str(")").bytes(), /the empty string after "executable"/],
      ["executable twice", W().str("(").str("type").str("regular").str("executable").str("").str("executable").str("").bytes(), /expected "contents"/],
      ["executable after contents", W().str("(").str("type").str("regular").str("contents").str("").str("executable").str("").str(")").bytes(), /expected "\)"/],
      ["symlink without target", W().str("(").str("type").str("symlink").str(")").bytes(), /expected "target"/],
      ["contents in a directory", W().str("(").str("type").str("directory").str("contents").str("x").str(")").bytes(), /expected "entry" or "\)"/],
      ["entry without node", W().str("(").str("type").str("directory").str("entry").str("(").str("name").str("a").str(")").bytes(), /expected "node"/],
      ["entry without name", W().str("(").str("type").str("directory").str("entry").str("(").str("node").bytes(), /expected "name"/],
      ["entry not closed", W().str("(").str("type").str("directory").str("entry").str("(").str("name").str("a").str("node").node(file("x")).str("entry").bytes(), /expected "\)"/],
      ["type twice", W().str("(").str("type").str("type").bytes(), /expected "regular"/],
      ["keyword with trailing NUL", W().str("(\0").bytes(), /expected "\("/],
      ["huge keyword length", W().raw(new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0x80])).bytes(), /token length too large at byte 24/],
      ["contents length beyond 2^53", W().str("(").str("type").str("regular").str("contents").raw(new Uint8Array([0, 0, 0, 0, 0, 0, 0x20, 0])).bytes(), /token length too large/],
    ];
    for (const [what, b, re] of cases) {
      try {
        expectRejected(b, re);
      } catch (e) {
        throw new Error(`${what}: ${(e as Error).message}`);
      }
    }
  });

  test("nothing is accepted after a failure", () => {
    const v = new NarValidator();
    expect(() => v.push(dirOf("b", "a"))).toThrow(NixFormatError);
    expect(() => v.push(new Uint8Array(0))).toThrow(/not strictly ascending/);
    expect(() => v.finish()).toThrow(/not strictly ascending/);
  });
});

describe("streaming", () => {
  test("caller may reuse its buffer between pushes", () => {
    const b = dumps.tree!;
    const buf = new Uint8Array(37);
    const v = new NarValidator();
    for (let p = 0; p < b.length; p += buf.length) {
      const n = Math.min(buf.length, b.length - p);
      buf.set(b.subarray(p, p + n));
      v.push(buf.subarray(0, n));
      buf.fill(0xff); // would corrupt any retained view
    }
    v.finish();
    expect(v.bytesSeen).toBe(b.length);
  });

  test("file contents are skipped, not buffered: 1 GiB through one 1 MiB buffer", () => {
    const size = 1024 * 1024 * 1024;
    const head = new NarWriter().str("nix-archive-1").str("(").str("type").str("regular").str("contents").bytes();
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(size), true);
    const tail = new NarWriter().str(")").bytes();
    const block = new Uint8Array(1024 * 1024).fill(0xab);
    const v = new NarValidator();
    const rss = process.memoryUsage().rss;
    let grew = 0;
    const t0 = performance.now();
    v.push(head);
    v.push(len);
    for (let i = 0; i < size / block.length; i++) {
      v.push(block);
      if (i % 64 === 0) grew = Math.max(grew, process.memoryUsage().rss - rss);
    }
    v.push(tail);
    v.finish();
    console.log(`NarValidator: 1 GiB of file contents in ${(performance.now() - t0).toFixed(0)} ms, resident memory grew ${(grew / 2 ** 20).toFixed(0)} MiB at most`);
    expect(v.bytesSeen).toBe(head.length + 8 + size + tail.length);
    // Kept, 1 GiB would show; skipped, nothing but noise does. (Speed is the ingest bench's.)
    expect(grew).toBeLessThan(128 * 2 ** 20);
  });

  test("many small files: throughput of the token path", () => {
    const entries: [string, NarNode][] = [];
    for (let i = 0; i < 20000; i++) entries.push([`f${String(i).padStart(6, "0")}`, { type: "regular", executable: i % 3 === 0, contents: `file ${i}` }]);
    const b = nar({ type: "directory", entries });
    const t0 = performance.now();
    expect(() => validate(randomSplits(b, prng(7), 65536))).not.toThrow();
    // Roughly 200 bytes of tokens per file; printed, not asserted (speed is the ingest bench's).
    console.log(`NarValidator: 20000 small files in ${(performance.now() - t0).toFixed(0)} ms`);
  });
});
