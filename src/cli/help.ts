/*
 * Every command's help, in one table: `garret --help` lists the commands, `garret COMMAND --help`
 * (and `garret help COMMAND`) prints a command's usage, what it does and every flag it takes.
 * A command with subcommands (cache, token, config, db, pin) has one entry per subcommand, keyed
 * "cache create"; `garret cache --help` prints them all. A flag a command parses belongs here too:
 * test/appliance/help.test.ts checks that every flag the README names is described.
 */

/** [how it is typed, with its value's placeholder; what it does]. */
export type FlagHelp = readonly [flag: string, about: string];

export interface CommandHelp {
  /** Usage lines, each without the leading "garret "; a line starting with spaces continues the one before. */
  usage: readonly string[];
  /** What the command does, in a sentence or two. */
  about: string;
  /** Which part of `garret --help` lists it. */
  group: "server" | "client";
  flags: readonly FlagHelp[];
}

const CA_FILE: FlagHelp = ["--ca-file FILE", "extra CA certificates (PEM) to trust for this server; SSL_CERT_FILE and NODE_EXTRA_CA_CERTS work too"];
const JSON_FLAG: FlagHelp = ["--json", "print JSON instead of text"];
const SERVER_DATA: readonly FlagHelp[] = [
  ["--data DIR", "the server's data dir (default ./garret-data, or GARRET_DATA)"],
  ["--config FILE", "the server's config file (default ./garret.toml, or GARRET_CONFIG)"],
  ["--database-url URL", "the metadata database, overriding the config (sqlite:///… or postgres://…)"],
];
const PUSH_FLAGS: readonly FlagHelp[] = [
  ["-j, --jobs N", "upload N paths at a time (default 4)"],
  ["--compression auto|zstd|none", "how NARs travel (auto: zstd unless the data does not shrink)"],
  ["--limit-rate RATE", "cap the upload rate, e.g. 20M or 500K bytes per second"],
  ["--retries N", "retries of a failed request, with backoff (default 5)"],
  ["--ignore-upstream-cache-filter", "also push paths signed by one of the cache's upstream keys (e.g. cache.nixos.org-1)"],
  JSON_FLAG,
  CA_FILE,
];
const PERMISSION_FLAGS: readonly FlagHelp[] = [
  ["--pull PATTERN", "may pull from caches matching PATTERN (a name or a glob like 'team-*'); repeatable"],
  ["--push PATTERN", "may push to them; repeatable"],
  ["--delete PATTERN", "may remove paths from them"],
  ["--create-cache PATTERN", "may create caches with matching names"],
  ["--configure-cache PATTERN", "may change their settings (public, priority, keys) and see who pushed what"],
  ["--configure-cache-retention PATTERN", "may change their retention and quota"],
  ["--destroy-cache PATTERN", "may destroy them"],
];
const CACHE_SETTINGS: readonly FlagHelp[] = [
  ["--public", "anyone may pull from the cache without a token"],
  ["--private", "only tokens with pull may read it"],
  ["--priority N", "the cache's priority for Nix (lower is preferred; default 41)"],
  ["--upstream-cache-key-name KEY", "paths signed by this key are not pushed (e.g. cache.nixos.org-1); repeatable"],
  ["--retention DURATION", "garbage-collect paths not pulled for this long (7d, 3mo, 1y); 0 or forever keeps them; default: the server's [gc] retention (needs configure-cache-retention)"],
  ["--quota SIZE", "stored bytes the cache may keep (10G, 500MiB) before least recently used paths go; none removes it (needs configure-cache-retention)"],
];

export const HELP: Readonly<Record<string, CommandHelp>> = {
  serve: {
    group: "server",
    usage: ["serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--log-format text|json]"],
    about: "serve the caches (default 127.0.0.1:8080 and ./garret-data); flags override the config file",
    flags: [
      ["--config FILE", "config file (default ./garret.toml if it exists, or GARRET_CONFIG)"],
      ["--listen HOST:PORT", "address to listen on (default 127.0.0.1:8080; port 0 takes a free one)"],
      ["--data DIR", "data dir: token secret, SQLite database, local storage (default ./garret-data)"],
      ["--public-url URL", "the URL clients reach this server at, when a proxy is in front"],
      ["--database-url URL", "metadata database: sqlite:///path/garret.db or postgres://user@host/db"],
      ["--compression zstd|br|none", "how new NARs are stored"],
      ["--compression-level N", "compression level (zstd 1..19, br 1..11)"],
      ["--log-format text|json", "request log format on stdout"],
      ["--retention DURATION", "default retention of unused paths, e.g. 30d or 3mo (0 keeps them forever)"],
      ["--gc-grace DURATION", "how long unreferenced data is kept before it is deleted (default 1h)"],
      ["--gc-interval DURATION", "how often the built-in garbage collection runs (default 1h)"],
    ],
  },
  "config check": {
    group: "server",
    usage: ["config check [--config FILE]"],
    about: "validate the config file, environment and defaults exactly as serve would, without starting",
    flags: [["--config FILE", "config file (default ./garret.toml, or GARRET_CONFIG)"]],
  },
  "config print": {
    group: "server",
    usage: ["config print [--config FILE]"],
    about: "print the effective settings as TOML, secrets hidden",
    flags: [["--config FILE", "config file (default ./garret.toml, or GARRET_CONFIG)"]],
  },
  gc: {
    group: "server",
    usage: ["gc [--data DIR | --config FILE] [--dry-run] [--json]"],
    about: "collect garbage now: paths past retention, orphaned data, pack compaction",
    flags: [
      ...SERVER_DATA,
      ["--dry-run", "report what would be removed, remove nothing"],
      ["--retention DURATION", "retention for this run instead of the configured one"],
      ["--grace DURATION", "keep unreferenced data younger than this (default 1h)"],
      ["--compact-threshold FRACTION", "rewrite packs with more than this fraction of dead bytes (default 0.5)"],
      JSON_FLAG,
    ],
  },
  fsck: {
    group: "server",
    usage: ["fsck [--repair] [--sample N] [--data DIR | --config FILE]"],
    about: "check stored bytes against their hashes; exits 1 when something is damaged",
    flags: [
      ...SERVER_DATA,
      ["--repair", "hide damaged paths so clients fall back to other caches (until re-pushed)"],
      ["--sample N", "check N random chunks instead of all of them"],
      JSON_FLAG,
    ],
  },
  audit: {
    group: "server",
    usage: ["audit [--data DIR | --config FILE] [--json]"],
    about: "admin actions (cache create/configure/destroy/purge, tokens) with actor and time",
    flags: [...SERVER_DATA, JSON_FLAG],
  },
  "db copy": {
    group: "server",
    usage: ["db copy --from sqlite:///…/garret.db --to postgres://…"],
    about: "copy the metadata to PostgreSQL (the target must be empty)",
    flags: [
      ["--from URL", "the source database, sqlite:///path/garret.db"],
      ["--to URL", "the empty target database, postgres://user:password@host/db"],
      JSON_FLAG,
    ],
  },
  setup: {
    group: "server",
    usage: ["setup [--yes] [--output FILE] [--listen HOST:PORT] [--storage local|s3] ..."],
    about: "wizard: write a config file, create the data dir and a first cache, print an admin token",
    flags: [
      ["-y, --yes", "take the default for every question not answered by a flag (no prompts)"],
      ["--output FILE", "the config file to write (default ./garret.toml)"],
      ["--config FILE", "the same as --output"],
      ["--force", "overwrite an existing config file"],
      ["--listen HOST:PORT", "address the server will listen on"],
      ["--public-url URL", "the URL clients will reach the server at"],
      ["--data DIR", "the server's data dir"],
      ["--storage local|s3", "where NARs are stored"],
      ["--storage-path DIR", "directory of local storage"],
      ["--s3-bucket BUCKET", "S3 bucket"],
      ["--s3-endpoint URL", "S3 endpoint, for a non-AWS server (MinIO, Garage, R2)"],
      ["--s3-region REGION", "S3 region"],
      ["--s3-prefix PREFIX", "key prefix inside the bucket"],
      ["--s3-access-key-id ID", "S3 access key id (default: the AWS credential chain)"],
      ["--s3-secret-access-key KEY", "S3 secret access key"],
      ["--database sqlite|postgres", "metadata database engine"],
      ["--database-url URL", "PostgreSQL URL, with --database postgres"],
      ["--compression zstd|br|none", "how NARs are stored"],
      ["--compression-level N", "compression level"],
      ["--retention DURATION", "default retention of unused paths (0 keeps them forever; e.g. 30d, 3mo, 1y)"],
      ["--cache NAME", "name of the first cache"],
      ["--public", "make the first cache public"],
      ["--private", "make the first cache private"],
      ["--alias NAME", "the server alias used in the printed next steps (default garret)"],
    ],
  },
  "token create": {
    group: "server",
    usage: ["token create --sub NAME --validity 1y [--pull P] [--push P] [--delete P] [--create-cache P]",
      "       [--configure-cache P] [--configure-cache-retention P] [--destroy-cache P] [--data DIR]"],
    about: "mint a token on the server (run where the data dir is); where patterns overlap, the first given wins",
    flags: [
      ["--sub NAME", "who the token is for (shown in logs and the audit log)"],
      ["--validity DURATION", "how long it is valid: s m h d w mo y, e.g. 15m, 90d, 1y"],
      ...PERMISSION_FLAGS,
      ...SERVER_DATA,
    ],
  },
  "token list": {
    group: "server",
    usage: ["token list [--json] [--data DIR | --config FILE]"],
    about: "tokens minted on this server: id, sub, permissions, expiry, revoked",
    flags: [...SERVER_DATA, JSON_FLAG],
  },
  "token revoke": {
    group: "server",
    usage: ["token revoke ID | --sub SUB [--data DIR | --config FILE]"],
    about: "revoke one token by id, or every token of a sub issued until now",
    flags: [["--sub SUB", "revoke every token of this sub"], ...SERVER_DATA],
  },
  "token exchange": {
    group: "client",
    usage: ["token exchange [ALIAS] --validity 1h [--caches P[,P...]] [--pull-only] [--token TOKEN]"],
    about: "trade this client's token for a narrower, shorter-lived one (printed on stdout)",
    flags: [
      ["--validity DURATION", "how long the new token is valid (at most the old one's expiry)"],
      ["--caches P[,P...]", "keep only these caches or patterns; repeatable"],
      ["--pull-only", "keep only pull"],
      ["--token TOKEN", "exchange this token instead of the alias's (or GARRET_TOKEN)"],
      CA_FILE,
    ],
  },
  login: {
    group: "client",
    usage: ["login ALIAS URL [TOKEN] [--set-default] [--ca-file FILE]"],
    about: "check a server and its token, then remember them (without TOKEN or GARRET_TOKEN it is asked for, not echoed); "
      + "a cache's URL (http://host:8080/mycache) is corrected to the server's",
    flags: [
      ["--set-default", "make ALIAS the default server (the first one saved is)"],
      ["--ca-file FILE", "extra CA certificates (PEM) to trust for this server, saved with it"],
      ["--no-check", "save without asking the server (e.g. before it is up); nothing is verified"],
    ],
  },
  whoami: {
    group: "client",
    usage: ["whoami [ALIAS] [--json]"],
    about: "what the server says this client's token is: sub, id, expiry, permissions per cache pattern",
    flags: [JSON_FLAG, CA_FILE],
  },
  logout: {
    group: "client",
    usage: ["logout ALIAS"],
    about: "forget a server and its token (the token stays valid on the server until it expires or is revoked)",
    flags: [],
  },
  "cache create": {
    group: "client",
    usage: ["cache create ALIAS:CACHE [--public] [--priority N] [--json]"],
    about: "create a cache; the server generates its signing key",
    flags: [...CACHE_SETTINGS, JSON_FLAG, CA_FILE],
  },
  "cache info": {
    group: "client",
    usage: ["cache info ALIAS:CACHE [--json]"],
    about: "a cache's settings (public, public key, endpoint, priority, upstream keys, retention, quota) and figures: paths, logical (NAR) and stored bytes, dedup saving, last push",
    flags: [JSON_FLAG, CA_FILE],
  },
  "cache configure": {
    group: "client",
    usage: ["cache configure ALIAS:CACHE [--public|--private] [--priority N] [--retention DURATION] [--quota SIZE] ..."],
    about: "change a cache's settings",
    flags: [...CACHE_SETTINGS, ["--regenerate-keypair", "give the cache a new signing key (clients must trust the new public key)"], JSON_FLAG, CA_FILE],
  },
  "cache destroy": {
    group: "client",
    usage: ["cache destroy ALIAS:CACHE [--yes]"],
    about: "destroy a cache; its paths are no longer served (asks first on a terminal)",
    flags: [["--yes", "do not ask"], CA_FILE],
  },
  "cache list": {
    group: "client",
    usage: ["cache list [ALIAS] [--json]"],
    about: "the caches the token may see on each server (and remembered ones that are gone)",
    flags: [JSON_FLAG, CA_FILE],
  },
  "cache rm": {
    group: "client",
    usage: ["cache rm ALIAS:CACHE PATH [--recursive]"],
    about: "remove a path from a cache",
    flags: [["--recursive", "also remove the paths in the cache that depend on it"], JSON_FLAG, CA_FILE],
  },
  "cache log": {
    group: "client",
    usage: ["cache log ALIAS:CACHE [--uploaded-by SUB | --token-id ID] [--json]"],
    about: "who pushed what: sub, token id, time, client address (needs configure-cache)",
    flags: [["--uploaded-by SUB", "only pushes by this sub"], ["--token-id ID", "only pushes with this token"], JSON_FLAG, CA_FILE],
  },
  "cache purge": {
    group: "client",
    usage: ["cache purge ALIAS:CACHE --uploaded-by SUB | --token-id ID [--since TIME] [--dry-run] [--json]",
      "       [--all-caches]"],
    about: "hide an uploader's paths and the paths that depend on them",
    flags: [
      ["--uploaded-by SUB", "purge what this sub pushed"],
      ["--token-id ID", "purge what this token pushed"],
      ["--since TIME", "only pushes at or after TIME (an ISO date, or a duration ago such as 2h)"],
      ["--dry-run", "list what would be hidden, hide nothing"],
      ["--all-caches", "every cache the token may configure (give ALIAS instead of ALIAS:CACHE)"],
      JSON_FLAG,
      CA_FILE,
    ],
  },
  push: {
    group: "client",
    usage: ["push ALIAS:CACHE PATH... [-j N] [--stdin] [--json]"],
    about: "push store paths (or symlinks to them, such as ./result) and their closures",
    flags: [["--stdin", "also read paths from stdin, one per line"], ...PUSH_FLAGS],
  },
  use: {
    group: "client",
    usage: ["use ALIAS:CACHE [--nix-conf FILE] [--netrc FILE] [--token TOKEN] [--dry-run]"],
    about: "make Nix substitute from a cache (nix.conf; for a private cache a pull-only token in netrc)",
    flags: [
      ["--nix-conf FILE", "the nix.conf to edit (default ~/.config/nix/nix.conf)"],
      ["--netrc FILE", "the netrc file nix.conf points at for a private cache"],
      ["--token TOKEN", "write this pull token instead of minting a pull-only one"],
      ["--dry-run", "print the changes, write nothing"],
      CA_FILE,
    ],
  },
  "watch-store": {
    group: "client",
    usage: ["watch-store ALIAS:CACHE [-j N] [--interval SECONDS]"],
    about: "push every new store path as it appears, until stopped",
    flags: [
      ["--interval SECONDS", "how often to look for new paths (default 1)"],
      ["--nix-db FILE", "Nix's database to watch (default /nix/var/nix/db/db.sqlite)"],
      ["--include-drv", "push .drv files too"],
      ...PUSH_FLAGS,
    ],
  },
  queue: {
    group: "client",
    usage: ["queue ALIAS:CACHE [PATH...]", "queue --drain | --worker | --list [--state-dir DIR]", "queue --remove ID|PATH..."],
    about: "spool paths ($OUT_PATHS by default, for a post-build-hook; never fails the build) and upload them later: once, or forever",
    flags: [
      ["--drain", "upload what is queued, then exit"],
      ["--worker", "keep uploading what gets queued, until stopped"],
      ["--list", "show what is queued (id, target, path), with failed attempts and held entries"],
      ["--remove ID|PATH...", "drop entries from the queue, by the id --list shows or by store path"],
      ["--state-dir DIR", "where the spool lives (default $XDG_STATE_HOME/garret)"],
      ["--interval SECONDS", "how often --worker looks at the spool (default 1)"],
      ...PUSH_FLAGS,
    ],
  },
  pin: {
    group: "client",
    usage: ["pin ALIAS:CACHE NAME PATH"],
    about: "keep a path and its closure regardless of retention, under NAME",
    flags: [JSON_FLAG, CA_FILE],
  },
  "pin list": {
    group: "client",
    usage: ["pin list ALIAS:CACHE [--json]"],
    about: "a cache's pins",
    flags: [JSON_FLAG, CA_FILE],
  },
  "pin remove": {
    group: "client",
    usage: ["pin remove ALIAS:CACHE NAME"],
    about: "drop a pin (its paths fall under retention again)",
    flags: [CA_FILE],
  },
};

/** Commands whose first argument must be one of their subcommands. */
const NEEDS_SUBCOMMAND = new Set(["cache", "token", "config", "db"]);

/** The top-level command names. */
export function commandNames(): string[] {
  return [...new Set(Object.keys(HELP).map((k) => k.split(" ")[0]!))];
}

/** The subcommands of `command`, when it must be given one. */
export function subcommandsOf(command: string): string[] | null {
  if (!NEEDS_SUBCOMMAND.has(command)) return null;
  return Object.keys(HELP).filter((k) => k.startsWith(`${command} `)).map((k) => k.slice(command.length + 1));
}

/** The help keys for `garret COMMAND [SUB] --help`: the one subcommand, or all of the command's. */
export function helpKeys(command: string, sub?: string): string[] {
  if (sub && Object.hasOwn(HELP, `${command} ${sub}`)) return [`${command} ${sub}`];
  return Object.keys(HELP).filter((k) => k === command || k.startsWith(`${command} `));
}

/** Lines of at most `columns` characters, each after the first indented by `indent` spaces. */
function wrap(text: string, indent: number, first: number, columns = 100): string[] {
  const lines: string[] = [];
  let line = "";
  let room = Math.max(30, columns - first);
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
      room = Math.max(30, columns - indent);
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : `${" ".repeat(indent)}${l}`));
}

function pad(text: string, width: number): string {
  return text.length >= width ? `${text}  ` : text.padEnd(width);
}

function renderEntry(h: CommandHelp): string {
  const lines = h.usage.map((u, i) => `${i === 0 ? "usage: " : "       "}${u.startsWith(" ") ? "" : "garret "}${u}`);
  lines.push("", `${h.about[0]!.toUpperCase()}${h.about.slice(1)}.`);
  const flags: FlagHelp[] = [...h.flags, ["-h, --help", "this help"]];
  const width = Math.min(34, Math.max(...flags.map(([f]) => f.length)) + 4);
  lines.push("", "Flags:");
  for (const [flag, about] of flags) {
    const head = `  ${flag}`;
    const text = wrap(about, width, width).join("\n");
    lines.push(head.length + 2 > width ? `${head}\n${" ".repeat(width)}${text}` : `${pad(head, width)}${text}`);
  }
  return `${lines.join("\n")}\n`;
}

/** `garret COMMAND [SUB] --help`. */
export function commandHelp(command: string, sub?: string): string {
  return helpKeys(command, sub).map((k) => renderEntry(HELP[k]!)).join("\n");
}

/** `garret --help`: every command's first usage line and what it does. */
export function overview(version: string): string {
  const section = (group: CommandHelp["group"]) => Object.values(HELP).filter((h) => h.group === group).flatMap((h) => {
    const first = `  garret ${h.usage[0]}`;
    const about = wrap(h.about, 8, 8).join("\n");
    return [first, `${" ".repeat(8)}${about}`];
  });
  return [
    `garret ${version}: a multi-tenant Nix binary cache`,
    "",
    "Server:",
    ...section("server"),
    "",
    "Client:",
    ...section("client"),
    "",
    "Client commands that reach a server take --ca-file FILE; SSL_CERT_FILE and NODE_EXTRA_CA_CERTS work too.",
    "garret COMMAND --help (or garret help COMMAND) describes every flag of a command.",
    "",
  ].join("\n");
}
