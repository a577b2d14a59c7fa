import { describe, expect, test } from "bun:test";
import { parseArgs as nodeParseArgs } from "node:util";
import { parseArgs } from "../../src/cli/args.ts";
import { UsageError } from "../../src/cli/errors.ts";

// The options of `garret push` and `garret cache`, the shapes every subcommand uses.
const OPTIONS = {
  jobs: { type: "string", short: "j" },
  json: { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  quiet: { type: "boolean", short: "q" },
  "ca-file": { type: "string" },
  "upstream-cache-key-name": { type: "string", multiple: true },
} as const;

const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v));

describe("parseArgs reads what node:util's parseArgs reads", () => {
  const cases: string[][] = [
    [],
    ["main:demo", "/nix/store/x"],
    ["-j", "8", "--json", "main:demo", "./result"],
    ["-j8", "main:demo"],
    ["--jobs=16", "--ca-file", "/etc/ca.pem", "a:b"],
    ["-yq", "a:b"],
    ["-qj", "4", "a:b"],
    ["--upstream-cache-key-name", "one-1", "--upstream-cache-key-name=two-1", "a:b"],
    ["a:b", "--", "--json", "-j"],
    ["-", "a:b"],
    ["--jobs=-1"],
    ["--jobs", "-"],
  ];
  for (const args of cases) {
    test(JSON.stringify(args), () => {
      const ours = parseArgs({ args, options: OPTIONS, allowPositionals: true });
      const node = nodeParseArgs({ args, options: OPTIONS, allowPositionals: true });
      expect(plain(ours.values)).toEqual(plain(node.values));
      expect(ours.positionals).toEqual(node.positionals);
    });
  }
});

describe("parseArgs refuses what node:util's parseArgs refuses, as a usage error", () => {
  const cases: [string[], RegExp][] = [
    [["--nope"], /Unknown option '--nope'/],
    [["-x"], /Unknown option '-x'/],
    [["--json=yes"], /'--json' does not take an argument/],
    [["--jobs"], /'-j, --jobs <value>' argument missing/],
    [["-j", "--json"], /'-j' argument is ambiguous.*--jobs=--json/],
    [["--ca-file", "-x"], /'--ca-file' argument is ambiguous/],
  ];
  for (const [args, message] of cases) {
    test(JSON.stringify(args), () => {
      expect(() => nodeParseArgs({ args, options: OPTIONS, allowPositionals: true })).toThrow();
      expect(() => parseArgs({ args, options: OPTIONS, allowPositionals: true })).toThrow(message);
      expect(() => parseArgs({ args, options: OPTIONS, allowPositionals: true })).toThrow(UsageError);
    });
  }

  test("positionals where the command takes none", () => {
    expect(() => nodeParseArgs({ args: ["stray"], options: OPTIONS })).toThrow();
    expect(() => parseArgs({ args: ["stray"], options: OPTIONS })).toThrow(/Unexpected argument 'stray'/);
  });
});

test("strict: false picks out known options and skips the rest", () => {
  const { values } = parseArgs({
    args: ["--listen", "127.0.0.1:0", "--data", "/tmp/d", "-j", "3", "--json", "--other=1", "-z"],
    options: { jobs: { type: "string", short: "j" }, json: { type: "boolean" } },
    strict: false,
  });
  expect(plain(values)).toEqual({ jobs: "3", json: true });
});

test("values has no inherited keys", () => {
  const { values } = parseArgs({ args: [], options: OPTIONS });
  expect(Object.getPrototypeOf(values)).toBeNull();
  expect(Object.keys(values)).toEqual([]);
});
