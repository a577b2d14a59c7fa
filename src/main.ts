#!/usr/bin/env bun
import pkg from "../package.json" with { type: "json" };
import { ApiError } from "./client/api.ts";
import { NixCommandError } from "./client/nix.ts";
import { CliError, UsageError } from "./cli/errors.ts";
import { commandHelp, overview, subcommandsOf } from "./cli/help.ts";
import { didYouMean } from "./suggest.ts";

type Command = (argv: string[]) => Promise<void>;

/** `--help` or `-h` among a command's own arguments (not after `--`). */
function wantsHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

// Set by scripts/build.ts in the compiled executable.
declare const GARRET_COMMIT: string | undefined;

/** The commit this binary was built from; from a checkout, asks git. */
function commit(): string {
  if (typeof GARRET_COMMIT === "string") return GARRET_COMMIT;
  try {
    const git = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: import.meta.dir, stderr: "ignore" });
    return git.exitCode === 0 ? `${git.stdout.toString().trim()} (checkout)` : "unknown";
  } catch {
    return "unknown"; // no git, or not a checkout
  }
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import("./cli/serve.ts")).serveCommand,
  token: async () => (await import("./cli/token.ts")).tokenCommand,
  login: async () => (await import("./cli/login.ts")).loginCommand,
  logout: async () => (await import("./cli/login.ts")).logoutCommand,
  whoami: async () => (await import("./cli/whoami.ts")).whoamiCommand,
  cache: async () => (await import("./cli/cache.ts")).cacheCommand,
  push: async () => (await import("./cli/push.ts")).pushCommand,
  use: async () => (await import("./cli/use.ts")).useCommand,
  queue: async () => (await import("./cli/queue.ts")).queueCommand,
  "watch-store": async () => (await import("./cli/watch.ts")).watchStoreCommand,
  setup: async () => (await import("./cli/setup.ts")).setupCommand,
  gc: async () => (await import("./cli/gc.ts")).gcCommand,
  fsck: async () => (await import("./cli/fsck.ts")).fsckCommand,
  audit: async () => (await import("./cli/audit.ts")).auditCommand,
  db: async () => (await import("./cli/db.ts")).dbCommand,
  pin: async () => (await import("./cli/pin.ts")).pinCommand,
  config: async () => (await import("./cli/config.ts")).configCommand,
};

/** User mistakes and remote refusals print one line; only real bugs print a stack. */
function report(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`error: ${err.message}\n`);
    return 2;
  }
  if (err instanceof ApiError) {
    process.stderr.write(err.explained ? `error: ${err.message}\n` : `error: ${err.message} (${err.error})\n`);
    return 1;
  }
  if (err instanceof CliError || err instanceof NixCommandError) {
    process.stderr.write(`error: ${err.message}\n`);
    return 1;
  }
  if (err instanceof TypeError && (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
    process.stderr.write(`error: ${err.message}\n`);
    return 2;
  }
  process.stderr.write(`internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
  return 70;
}

/** A command (or a command's subcommand) that does not exist, with the nearest real one. */
function unknownCommand(given: string, known: string[], prefix = ""): UsageError {
  const hint = didYouMean(given, known, (s) => JSON.stringify(`${prefix}${s}`));
  return new UsageError(`unknown command ${JSON.stringify(`${prefix}${given}`)}${hint || `; see garret ${prefix}--help`}`);
}

/** `garret help [COMMAND [SUB]]` and `garret COMMAND [SUB] --help`. */
function printHelp(name: string | undefined, sub: string | undefined): void {
  if (!name) {
    process.stdout.write(overview(pkg.version));
    return;
  }
  if (!Object.hasOwn(COMMANDS, name)) throw unknownCommand(name, Object.keys(COMMANDS));
  process.stdout.write(commandHelp(name, sub));
}

/** Refuses a mistyped subcommand of cache, token, config or db before loading the command. */
function checkSubcommand(name: string, rest: string[]): void {
  const subs = subcommandsOf(name);
  const sub = rest[0];
  if (!subs || sub === undefined || sub.startsWith("-") || subs.includes(sub)) return;
  throw unknownCommand(sub, subs, `${name} `);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (!name || name === "--help" || name === "-h") {
      printHelp(undefined, undefined);
      return 0;
    }
    if (name === "help") {
      printHelp(rest[0], rest[1]);
      return 0;
    }
    if (name === "--version" || name === "version") {
      process.stdout.write(`garret ${pkg.version} (commit ${commit()})\n`);
      return 0;
    }
    const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!load) throw unknownCommand(name, Object.keys(COMMANDS));
    if (wantsHelp(rest)) {
      printHelp(name, rest[0]);
      return 0;
    }
    checkSubcommand(name, rest);
    await (await load())(rest);
    return 0;
  } catch (err) {
    return report(err);
  }
}

const code = await main(process.argv.slice(2));
if (code !== 0) process.exit(code);
