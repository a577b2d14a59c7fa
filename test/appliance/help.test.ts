/** Every command answers --help (and -h) with its own usage lines instead of an error. */
import { expect, test } from "bun:test";
import { run } from "../helpers/nix.ts";
import { garretCmd } from "../helpers/server.ts";

test("command --help and -h print that command's usage and exit 0", () => {
  for (const [args, usage] of [
    [["cache", "create", "--help"], "garret cache create|info|configure|destroy ALIAS:CACHE"],
    [["push", "-h"], "garret push ALIAS:CACHE PATH..."],
    [["serve", "--help"], "garret serve [--config FILE]"],
    [["queue", "--help"], "garret queue --drain | --worker"],
  ] as [string[], string][]) {
    const r = run(garretCmd(...args));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(usage);
    expect(r.stdout).not.toContain("garret login"); // only the command's own lines
    expect(r.stderr).toBe("");
  }
});

test("--help after -- is an argument, and unknown commands still fail", () => {
  expect(run(garretCmd("push", "x:y", "--", "--help")).stdout).not.toContain("garret push ALIAS:CACHE");
  const r = run(garretCmd("no-such-command", "--help"));
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("unknown command");
});
