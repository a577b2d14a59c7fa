#!/usr/bin/env bun
import pkg from "../package.json" with { type: "json" };
import { ApiError } from "./client/api.ts";
import { NixCommandError } from "./client/nix.ts";
import { CliError, UsageError } from "./cli/errors.ts";

const HELP = `garret ${pkg.version}: a multi-tenant Nix binary cache

Server:
  garret serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--log-format text|json]
                                                     serve caches (default 127.0.0.1:8080, ./garret-data)
  garret config check|print [--config FILE]          validate, or show the effective settings (secrets hidden)
  garret gc [--data DIR | --config FILE] [--dry-run] [--json]
                                                     collect garbage now (retention, orphans, compaction)
  garret fsck [--repair] [--sample N] [--data DIR | --config FILE]
                                                     check stored bytes; --repair hides damaged paths
  garret audit [--data DIR | --config FILE] [--json]
                                                     admin actions (cache create/configure/destroy/purge, tokens) with actor and time
  garret db copy --from sqlite:///…/garret.db --to postgres://…
                                                     move metadata to PostgreSQL (target must be empty)
  garret setup [--yes] [--output FILE] [--listen ..] [--storage local|s3] ..
                                                     wizard: write a config, data dir and first cache
  garret token create --sub NAME --validity 1y [--pull P] [--push P] [--delete P] [--create-cache P]
        [--configure-cache P] [--configure-cache-retention P] [--destroy-cache P] [--data DIR]

Client:
  garret login ALIAS URL [TOKEN]                     remember a server and its token
        [--set-default] [--ca-file FILE]            (without TOKEN or GARRET_TOKEN: asked for, not echoed)
  garret cache create|info|configure|destroy ALIAS:CACHE [--public] [--priority N] [--json]
        [--yes]                                      (destroy asks first on a terminal)
  garret cache list [ALIAS] [--json]                 caches this client knows, checked on the server
  garret push ALIAS:CACHE PATH...                    push store paths and their closures
        [-j N] [--stdin] [--json] [--ignore-upstream-cache-filter] [--compression auto|zstd|none]
        [--limit-rate 20M] [--retries N]
  garret use ALIAS:CACHE [--nix-conf FILE] [--netrc FILE] [--dry-run]
                                                     make Nix substitute from a cache (nix.conf, netrc)
  garret watch-store ALIAS:CACHE [-j N] [--interval SECONDS]
                                                     push every new store path as it appears
  garret queue ALIAS:CACHE [PATH...]                 spool $OUT_PATHS for a later push (post-build-hook)
  garret queue --drain | --worker | --list [--state-dir DIR]
                                                     upload what is spooled: once, or forever
  (client commands that reach a server take --ca-file FILE; SSL_CERT_FILE and NODE_EXTRA_CA_CERTS work too)
  garret cache rm ALIAS:CACHE PATH [--recursive]     remove a path from a cache
  garret cache log ALIAS:CACHE [--uploaded-by SUB | --token-id ID] [--json]
                                                     who pushed what: sub, token id, time, client address
  garret cache purge ALIAS:CACHE --uploaded-by SUB | --token-id ID [--since TIME] [--dry-run] [--json]
        [--all-caches]                               hide an uploader's paths and their dependants
  garret pin ALIAS:CACHE NAME PATH                   keep a path and its closure regardless of retention
  garret pin list|remove ALIAS:CACHE [NAME]
`;

type Command = (argv: string[]) => Promise<void>;

/** `--help` or `-h` among a command's own arguments (not after `--`). */
function wantsHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/** The lines of HELP about one command (its usage lines and their continuations). */
function commandHelp(name: string): string {
  const out: string[] = [];
  let inside = false;
  for (const line of HELP.split("\n")) {
    if (/^  garret /.test(line)) inside = line.startsWith(`  garret ${name} `) || line === `  garret ${name}`;
    else if (!/^ {6,}/.test(line)) inside = false;
    if (inside) out.push(line);
  }
  return out.length > 0 ? `${out.join("\n")}\n` : HELP;
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
    process.stderr.write(`error: ${err.message} (${err.error})\n`);
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

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(HELP);
    return 0;
  }
  if (name === "--version" || name === "version") {
    process.stdout.write(`garret ${pkg.version} (commit ${commit()})\n`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load && name !== "setup" && wantsHelp(rest)) {
    process.stdout.write(commandHelp(name));
    return 0;
  }
  if (!load) {
    process.stderr.write(`error: unknown command ${JSON.stringify(name)}; see garret --help\n`);
    return 2;
  }
  try {
    await (await load())(rest);
    return 0;
  } catch (err) {
    return report(err);
  }
}

const code = await main(process.argv.slice(2));
if (code !== 0) process.exit(code);
