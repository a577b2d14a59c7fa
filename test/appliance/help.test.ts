/**
 * Every command answers --help (and -h, and `garret help COMMAND`) with its usage, what it does and
 * every flag it takes (issue 17); every flag the README names for a command is in that command's help;
 * mistyped commands and subcommands suggest the nearest real one.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../helpers/nix.ts";
import { garretCmd, REPO } from "../helpers/server.ts";
import { HELP } from "../../src/cli/help.ts";

test("command --help and -h print that command's usage and exit 0", () => {
  for (const [args, usage] of [
    [["cache", "create", "--help"], "garret cache create ALIAS:CACHE"],
    [["push", "-h"], "garret push ALIAS:CACHE PATH..."],
    [["serve", "--help"], "garret serve [--config FILE]"],
    [["queue", "--help"], "garret queue --drain | --worker"],
    [["setup", "--help"], "garret setup [--yes]"],
  ] as [string[], string][]) {
    const r = run(garretCmd(...args));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(usage);
    expect(r.stdout).not.toContain("garret login"); // only the command's own lines
    expect(r.stderr).toBe("");
  }
});

test("--help describes each flag, not just the usage line; garret help COMMAND says the same", () => {
  const push = run(garretCmd("push", "--help"));
  expect(push.stdout).toMatch(/\n {2}--limit-rate RATE +cap the upload rate/);
  expect(push.stdout).toMatch(/\n {2}--stdin +also read paths from stdin/);
  expect(push.stdout).toMatch(/\n {2}-j, --jobs N +upload N paths at a time/);
  const serve = run(garretCmd("serve", "--help")).stdout;
  expect(serve).toMatch(/\n {2}--public-url URL +the URL clients reach/);
  expect(run(garretCmd("help", "push")).stdout).toBe(push.stdout);
  // A subcommand's help is its own; the command's help has all of its subcommands.
  const create = run(garretCmd("cache", "create", "--help")).stdout;
  expect(create).not.toContain("garret cache destroy");
  const cache = run(garretCmd("cache", "--help")).stdout;
  for (const sub of ["create", "info", "configure", "destroy", "list", "rm", "log", "purge"]) expect(cache).toContain(`usage: garret cache ${sub} `);
  expect(run(garretCmd("help", "cache", "create")).stdout).toBe(create);
});

/**
 * The flags the README names per command: in each `code span` and each line of a code block, a
 * `garret CMD [SUB]` and the --flags after it; a span of flags alone (`--json`) belongs to the
 * last command named in its paragraph.
 */
function readmeFlags(): { command: string; sub: string | null; flag: string }[] {
  const text = readFileSync(join(REPO, "README.md"), "utf8");
  const found: { command: string; sub: string | null; flag: string }[] = [];
  const snippetsOf = (block: string, fenced: boolean): string[] =>
    fenced ? block.replace(/\\\n/g, " ").split("\n") : [...block.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
  const blocks: { text: string; fenced: boolean }[] = [];
  text.split(/^```.*$/m).forEach((part, i) => {
    if (i % 2 === 1) blocks.push({ text: part, fenced: true });
    else for (const para of part.split(/\n\s*\n/)) blocks.push({ text: para, fenced: false });
  });
  for (const block of blocks) {
    let last: { command: string; sub: string | null } | null = null;
    for (const snippet of snippetsOf(block.text, block.fenced)) {
      const parts = snippet.split(/(?=(?:^|[\s/])garret [a-z])/);
      for (const part of parts) {
        const m = /(?:^|[\s/])garret ([a-z][a-z-]*)(?: ([a-z][a-z|-]*))?/.exec(part);
        if (m) last = { command: m[1]!, sub: m[2] ?? null };
        else if (!/^\s*--/.test(part)) continue;
        if (!last) continue;
        for (const f of part.matchAll(/(?:^|[\s[(|])(--[a-z][a-z0-9-]*)/g)) found.push({ ...last, flag: f[1]! });
      }
    }
  }
  return found;
}

test("every flag the README names for a command is described in that command's --help", () => {
  const commands = new Set([...run(garretCmd("--help")).stdout.matchAll(/^ {2}garret ([a-z-]+)/gm)].map((m) => m[1]!));
  // Prose such as "garret may not" is not a command.
  const named = readmeFlags().filter((n) => commands.has(n.command));
  expect(named.length).toBeGreaterThan(40);
  const helps = new Map<string, string>();
  const missing: string[] = [];
  for (const { command, sub, flag } of named) {
    const key = `${command} ${sub ?? ""}`;
    if (!helps.has(key)) {
      const r = run(garretCmd(command, ...(sub && /^[a-z-]+$/.test(sub) ? [sub] : []), "--help"));
      helps.set(key, r.code === 0 ? r.stdout : "");
    }
    const help = helps.get(key)!;
    // Described on a flag line of its own, not only mentioned in a usage line.
    if (!new RegExp(`\\n {2}(?:-[a-z], )?${flag}(?![a-z-])[^\\n]*\\S`).test(help)) missing.push(`garret ${key.trim()} ${flag}`);
  }
  expect([...new Set(missing)]).toEqual([]);
});

/** The long flag names a help entry describes (`-j, --jobs N` -> jobs). */
const describedFlags = (key: string): string[] =>
  HELP[key]!.flags.flatMap(([spec]) => spec.split(/[\s,]+/).filter((w) => w.startsWith("--")).map((w) => w.slice(2)));

test("help and parsers agree: every flag a command parses is described, every described flag is parsed", () => {
  const problems: string[] = [];
  const byCommand = new Map<string, string[]>();
  for (const key of Object.keys(HELP)) byCommand.set(key.split(" ")[0]!, [...(byCommand.get(key.split(" ")[0]!) ?? []), key]);
  for (const [command, keys] of byCommand) {
    const described = new Set(keys.flatMap(describedFlags));
    for (const key of keys) {
      // queue's parser with every flag is its --drain one; the others parse before doing anything.
      const args = key === "queue" ? ["queue", "--drain"] : key.split(" ");
      const r = run(garretCmd(...args), { env: { GARRET_LIST_FLAGS: "1" } });
      const parsed: string[] = r.code === 0 ? JSON.parse(r.stdout) : [];
      if (r.code !== 0) problems.push(`garret ${key}: ${r.stderr.trim()}`);
      for (const flag of describedFlags(key)) if (!parsed.includes(flag)) problems.push(`garret ${key} --help describes --${flag}, which it does not take`);
      for (const flag of parsed) if (flag !== "help" && !described.has(flag)) problems.push(`garret ${command} takes --${flag}, which no help describes`);
    }
  }
  expect([...new Set(problems)]).toEqual([]);
});

test("a mistyped command or subcommand suggests the nearest one, exit 2", () => {
  for (const [args, line] of [
    [["pussh"], 'error: unknown command "pussh"; did you mean "push"?\n'],
    [["cache", "creat", "x:y"], 'error: unknown command "cache creat"; did you mean "cache create"?\n'],
    [["token", "lsit"], 'error: unknown command "token lsit"; did you mean "token list"?\n'],
    [["config", "chek"], 'error: unknown command "config chek"; did you mean "config check"?\n'],
    [["db", "cpy"], 'error: unknown command "db cpy"; did you mean "db copy"?\n'],
    [["queue", "--drian"], 'error: unknown option "--drian"; did you mean "--drain"?\n'],
    [["push", "--limit-rat", "1M", "x:y", "/nix/store/x"], "error: Unknown option '--limit-rat'; did you mean '--limit-rate'?\n"],
    [["frobnicate"], 'error: unknown command "frobnicate"; see garret --help\n'],
  ] as [string[], string][]) {
    const r = run(garretCmd(...args));
    expect({ args, stderr: r.stderr, code: r.code }).toEqual({ args, stderr: line, code: 2 });
  }
});

test("--help after -- is an argument, and unknown commands still fail", () => {
  expect(run(garretCmd("push", "x:y", "--", "--help")).stdout).not.toContain("garret push ALIAS:CACHE");
  const r = run(garretCmd("no-such-command", "--help"));
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("unknown command");
});
