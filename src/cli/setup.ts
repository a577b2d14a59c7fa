import { DEFAULT_ALIAS, selfCommand } from "./invocation.ts";
import { chmodSync, existsSync, mkdirSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseArgs, type ParsedValues } from "./args.ts";
import * as p from "@clack/prompts";
import { ConfigError, databasePath, DEFAULT_CONFIG_FILE, DEFAULT_DATA_DIR, DEFAULT_LISTEN, serverConfig } from "../config.ts";
import { loadOrCreateTokenSecret } from "../auth/secret.ts";
import { TokenAuthority } from "../auth/token.ts";
import { toLetters, type Permission } from "../auth/permissions.ts";
import { DEFAULT_PRIORITY, DEFAULT_UPSTREAM_KEYS, publicKeyOf } from "../cache/caches.ts";
import { SqliteMetaStore } from "../db/sqlite.ts";
import { PostgresMetaStore } from "../db/postgres.ts";
import { parseDatabaseUrl } from "../db/open.ts";
import type { CacheRecord, Compression } from "../db/types.ts";
import { formatSecretKey, generateSecretKey } from "../nix/signing.ts";
import { DEFAULT_STORE_DIR } from "../nix/store-path.ts";
import { COMPRESSIONS } from "../store/compression.ts";
import { DEFAULT_PART_SIZE, S3Storage } from "../store/s3.ts";
import { StorageError } from "../store/storage.ts";
import { CliError, UsageError } from "./errors.ts";
import {
  checkBucket, checkCacheName, checkListen, checkOptionalUrl, checkPath, checkPrefix, checkRequired,
  checkRetention, checkUrl, DEFAULT_CACHE_NAME, DEFAULT_S3_REGION, defaultPublicUrl, defaultStoragePath,
  parseRetention, renderConfig, type S3StorageAnswer, type SetupAnswers,
} from "./setup-config.ts";

const USAGE = "usage: garret setup [--output FILE] [--force] [--yes] [--listen HOST:PORT] [--public-url URL] [--data DIR] "
  + "[--storage local|s3] [--storage-path DIR] [--s3-bucket B] [--s3-endpoint URL] [--s3-region R] [--s3-prefix P] "
  + "[--s3-access-key-id ID] [--s3-secret-access-key KEY] [--database sqlite|postgres] [--database-url URL] [--compression zstd|br|none] "
  + "[--compression-level N] [--retention 0|30d|...] [--cache NAME] [--public|--private] [--alias NAME]";

const OPTIONS = {
  config: { type: "string" }, output: { type: "string" }, force: { type: "boolean" }, yes: { type: "boolean", short: "y" },
  listen: { type: "string" }, "public-url": { type: "string" }, data: { type: "string" },
  storage: { type: "string" }, "storage-path": { type: "string" },
  "s3-bucket": { type: "string" }, "s3-endpoint": { type: "string" }, "s3-region": { type: "string" },
  "s3-prefix": { type: "string" }, "s3-access-key-id": { type: "string" }, "s3-secret-access-key": { type: "string" },
  database: { type: "string" }, "database-url": { type: "string" }, compression: { type: "string" }, "compression-level": { type: "string" },
  retention: { type: "string" }, cache: { type: "string" }, public: { type: "boolean" }, private: { type: "boolean" },
  alias: { type: "string" }, help: { type: "boolean", short: "h" },
} as const;

type Flags = ParsedValues<typeof OPTIONS>;

/** Ctrl-C or Escape at a prompt. */
class Cancelled extends Error {}

const ALL_PERMISSIONS: Permission = {
  pull: true, push: true, delete: true, createCache: true, configureCache: true,
  configureCacheRetention: true, destroyCache: true,
};
const ADMIN_TOKEN_VALIDITY = 365 * 24 * 3600;

/**
 * One question: a flag answers it, else --yes takes the default, else it is asked on the terminal.
 * Without a terminal and without --yes, a question that needs asking is an error.
 */
class Asker {
  constructor(private readonly yes: boolean) {}

  /** True when unanswered questions are asked on a terminal. */
  get interactive(): boolean {
    return !this.yes && process.stdin.isTTY === true && process.stdout.isTTY === true;
  }

  private mustAsk(flag: string): void {
    if (!this.interactive) {
      throw new UsageError(`garret setup needs a terminal to ask for ${flag}; pass it, or --yes to take the defaults`);
    }
  }

  private static answer<T>(v: T): Exclude<T, symbol> {
    if (p.isCancel(v)) throw new Cancelled();
    return v as Exclude<T, symbol>;
  }

  async text(q: {
    flag: string; given: string | undefined; message: string; def: string; check: (v: string) => string | undefined;
    /** Ignore the flag (asking again after a failed check). */
    reask?: boolean; optional?: boolean;
  }): Promise<string> {
    const given = q.reask ? undefined : q.given;
    if (given !== undefined) {
      const problem = q.check(given);
      if (problem) throw new UsageError(`--${q.flag}: ${problem}, got ${JSON.stringify(given)}`);
      return given.trim();
    }
    if (this.yes) return q.def;
    this.mustAsk(`--${q.flag}`);
    const v = Asker.answer(await p.text({
      message: q.message,
      placeholder: q.def === "" ? (q.optional ? "(none)" : undefined) : q.def,
      defaultValue: q.def,
      initialValue: q.reask ? q.given : undefined,
      validate: (v) => q.check(v === undefined || v === "" ? q.def : v),
    }));
    return (v === "" ? q.def : v).trim();
  }

  async secret(q: { flag: string; given: string | undefined; message: string; reask?: boolean }): Promise<string> {
    const given = q.reask ? undefined : q.given;
    if (given !== undefined) return given;
    if (this.yes) throw new UsageError(`--${q.flag} is required with an access key id`);
    this.mustAsk(`--${q.flag}`);
    return Asker.answer(await p.password({ message: q.message, validate: (v) => (v ? undefined : "required") }));
  }

  async select<T extends string>(q: {
    flag: string; given: string | undefined; message: string; def: T;
    options: { value: T; label: string; hint?: string; disabled?: boolean }[];
    refuse?: (v: string) => string | undefined;
  }): Promise<T> {
    if (q.given !== undefined) {
      const refused = q.refuse?.(q.given);
      if (refused) throw new UsageError(`--${q.flag}: ${refused}`);
      const ok = q.options.find((o) => o.value === q.given && !o.disabled);
      if (!ok) {
        const allowed = q.options.filter((o) => !o.disabled).map((o) => o.value).join(", ");
        throw new UsageError(`--${q.flag}: must be one of ${allowed}, got ${JSON.stringify(q.given)}`);
      }
      return ok.value;
    }
    if (this.yes) return q.def;
    this.mustAsk(`--${q.flag}`);
    return Asker.answer(await p.select<T>({
      message: q.message,
      options: q.options as Parameters<typeof p.select<T>>[0]["options"],
      initialValue: q.def,
    }));
  }

  async confirm(message: string): Promise<boolean> {
    if (this.yes) return true;
    this.mustAsk("--yes");
    return Asker.answer(await p.confirm({ message, initialValue: true }));
  }
}

function checkPostgresUrl(v: string): string | undefined {
  if (!v) return "required";
  try {
    return parseDatabaseUrl(v).engine === "postgres" ? undefined : "use a postgres:// URL";
  } catch (err) {
    return (err as Error).message.replace(/^database url:? ?/, "");
  }
}

/** The live PostgreSQL check: connects and runs the migrations; the problem in one line, or null. */
async function checkPostgres(url: string): Promise<string | null> {
  try {
    await (await PostgresMetaStore.open(url, 1)).end();
    return null;
  } catch (err) {
    return (err as Error).message.split("\n")[0]!;
  }
}

/** The live S3 check: HeadBucket with these settings; the problem in one line, or null. */
async function checkS3(s: S3StorageAnswer): Promise<string | null> {
  const storage = new S3Storage({
    bucket: s.bucket, region: s.region, endpoint: s.endpoint ?? undefined, forcePathStyle: s.endpoint !== null,
    prefix: s.prefix, accessKeyId: s.accessKeyId ?? undefined, secretAccessKey: s.secretAccessKey ?? undefined,
    partSize: DEFAULT_PART_SIZE, maxAttempts: 2, redirectTtl: 0,
  });
  try {
    await storage.init();
    return null;
  } catch (err) {
    if (err instanceof StorageError) return err.message;
    return (err as Error).message ?? String(err);
  } finally {
    storage.client.destroy();
  }
}

async function askS3(ask: Asker, f: Flags, previous: S3StorageAnswer | null): Promise<S3StorageAnswer> {
  const reask = previous !== null;
  const prev = (key: keyof S3StorageAnswer, flag: string | undefined): string | undefined => {
    const v = previous?.[key];
    return previous ? (typeof v === "string" ? v : undefined) : flag;
  };
  const bucket = await ask.text({
    flag: "s3-bucket", given: prev("bucket", f["s3-bucket"]), reask, message: "S3 bucket", def: "", check: checkBucket,
  });
  const endpoint = await ask.text({
    flag: "s3-endpoint", given: prev("endpoint", f["s3-endpoint"]), reask, optional: true,
    message: "S3 endpoint URL (empty for AWS; e.g. https://<account>.r2.cloudflarestorage.com, http://minio:9000)",
    def: "", check: checkOptionalUrl,
  });
  const region = await ask.text({
    flag: "s3-region", given: prev("region", f["s3-region"]), reask,
    message: "S3 region (R2 uses auto)", def: process.env.AWS_REGION || DEFAULT_S3_REGION, check: checkRequired,
  });
  const prefix = f["s3-prefix"] ?? previous?.prefix ?? "";
  const prefixProblem = checkPrefix(prefix);
  if (prefixProblem) throw new UsageError(`--s3-prefix: ${prefixProblem}, got ${JSON.stringify(prefix)}`);
  const accessKeyId = await ask.text({
    flag: "s3-access-key-id", given: prev("accessKeyId", f["s3-access-key-id"]), reask, optional: true,
    message: "Access key ID (empty: use AWS_ACCESS_KEY_ID or an AWS profile)", def: "", check: () => undefined,
  });
  let secretAccessKey: string | null = null;
  if (accessKeyId !== "") {
    secretAccessKey = await ask.secret({
      flag: "s3-secret-access-key", given: f["s3-secret-access-key"], reask, message: "Secret access key",
    });
  } else if (f["s3-secret-access-key"] !== undefined && !reask) {
    throw new UsageError("--s3-secret-access-key: needs --s3-access-key-id too");
  }
  return {
    type: "s3", bucket, region, endpoint: endpoint === "" ? null : endpoint.replace(/\/+$/, ""), prefix,
    accessKeyId: accessKeyId === "" ? null : accessKeyId, secretAccessKey,
  };
}

/** Asks (or reads from flags) everything; touches nothing on disk. */
async function collect(ask: Asker, f: Flags): Promise<SetupAnswers> {
  const listen = await ask.text({
    flag: "listen", given: f.listen, message: "Listen on which address? (HOST:PORT; 0.0.0.0 for all interfaces)",
    def: DEFAULT_LISTEN, check: checkListen,
  });
  const publicUrl = (await ask.text({
    flag: "public-url", given: f["public-url"], message: "Public URL that clients and Nix will use",
    def: defaultPublicUrl(listen), check: checkUrl,
  })).replace(/\/+$/, "");
  const dataDir = resolve(await ask.text({
    flag: "data", given: f.data, message: "Data directory (database, token secret, local storage)",
    def: DEFAULT_DATA_DIR, check: checkPath,
  }));

  const storageType = await ask.select({
    flag: "storage", given: f.storage, message: "Where should NAR data be stored?", def: "local" as "local" | "s3",
    options: [
      { value: "local", label: "Local disk", hint: "a directory on this machine" },
      { value: "s3", label: "S3-compatible object store", hint: "AWS S3, Cloudflare R2, MinIO, Garage, ..." },
    ],
  });
  let storage: SetupAnswers["storage"];
  if (storageType === "local") {
    const def = defaultStoragePath(dataDir);
    const path = resolve(await ask.text({
      flag: "storage-path", given: f["storage-path"], message: "Storage directory", def, check: checkPath,
    }));
    storage = { type: "local", path: path === def ? null : path };
  } else {
    let s3 = await askS3(ask, f, null);
    for (;;) {
      const spin = ask.interactive ? p.spinner() : null;
      spin?.start(`Checking bucket ${s3.bucket}`);
      const problem = await checkS3(s3);
      if (problem === null) {
        spin?.stop(`S3 bucket ${s3.bucket} is reachable with these credentials`);
        break;
      }
      if (!ask.interactive) throw new CliError(`storage: ${problem}`);
      spin?.error(problem);
      p.log.warn("Check the S3 settings and try again (Ctrl-C to give up).");
      s3 = await askS3(ask, f, s3);
    }
    storage = s3;
  }

  const database = await ask.select({
    flag: "database", given: f.database, message: "Database", def: "sqlite" as "sqlite" | "postgres",
    options: [
      { value: "sqlite", label: "Embedded SQLite", hint: databasePath(dataDir) },
      { value: "postgres", label: "PostgreSQL", hint: "several replicas on one database" },
    ],
  });
  let databaseUrl: string | null = null;
  if (database === "postgres") {
    let reask = false;
    for (;;) {
      databaseUrl = await ask.text({
        flag: "database-url", given: reask ? undefined : f["database-url"], message: "PostgreSQL URL (postgres://user:pass@host:5432/db)",
        def: "", check: checkPostgresUrl,
      });
      const spin = ask.interactive ? p.spinner() : null;
      spin?.start("Checking the database");
      const problem = await checkPostgres(databaseUrl);
      if (problem === null) {
        spin?.stop("PostgreSQL is reachable; the schema is in place");
        break;
      }
      if (!ask.interactive) throw new CliError(`database: ${problem}`);
      spin?.error(problem);
      p.log.warn("Check the URL and try again (Ctrl-C to give up).");
      reask = true;
    }
  } else if (f["database-url"] !== undefined) {
    throw new UsageError("--database-url: needs --database postgres");
  }
  const compression = await ask.select<Compression>({
    flag: "compression", given: f.compression, message: "Compression of stored chunks", def: "zstd",
    options: [
      { value: "zstd", label: "zstd", hint: "recommended: served to Nix without recompressing" },
      { value: "br", label: "brotli", hint: "smaller, slower; served uncompressed" },
      { value: "none", label: "none" },
    ].filter((o) => (COMPRESSIONS as readonly string[]).includes(o.value)) as { value: Compression; label: string }[],
  });
  let compressionLevel: number | null = null;
  if (f["compression-level"] !== undefined) {
    const n = Number(f["compression-level"]);
    const max = compression === "br" ? 11 : 19;
    if (compression === "none" || !Number.isInteger(n) || n < 1 || n > max) {
      throw new UsageError(`--compression-level: must be an integer 1..${max} for ${compression}`);
    }
    compressionLevel = n;
  }
  const retention = parseRetention(await ask.text({
    flag: "retention", given: f.retention,
    message: "Keep paths nobody pulls for how long? (e.g. 30d, 3mo, 1y; 0 keeps everything forever)",
    def: "0", check: checkRetention,
  }));

  const cacheName = await ask.text({
    flag: "cache", given: f.cache, message: "Name of the first cache", def: DEFAULT_CACHE_NAME, check: checkCacheName,
  });
  if (f.public && f.private) throw new UsageError("--public and --private: choose one");
  const visibility = await ask.select({
    flag: "public", given: f.public ? "public" : f.private ? "private" : undefined,
    message: `Who may pull from ${cacheName}?`, def: "private" as "private" | "public",
    options: [
      { value: "private", label: "Private", hint: "pulling needs a token" },
      { value: "public", label: "Public", hint: "anyone can pull; pushing still needs a token" },
    ],
  });
  return {
    listen, publicUrl, dataDir, storage, database, databaseUrl, compression, compressionLevel, retention,
    cache: { name: cacheName, isPublic: visibility === "public" },
  };
}

/** Writes the file atomically (temporary file, then rename), mode 0600, after checking it loads. */
function writeConfig(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, text, { mode: 0o600, flag: "w" });
  } catch (err) {
    throw new CliError(`cannot write ${path}: ${(err as Error).message}`);
  }
  try {
    chmodSync(tmp, 0o600);
    serverConfig({ config: tmp }, {});
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch { /* already gone */ }
    if (err instanceof ConfigError) throw new CliError(`the generated config does not load (a bug in garret setup): ${err.message}`);
    throw new CliError(`cannot write ${path}: ${(err as Error).message}`);
  }
}

/** Creates the data dir, the token secret and the first cache; returns the cache and an admin token. */
async function initialize(a: SetupAnswers): Promise<{ cache: CacheRecord; created: boolean; token: string }> {
  await mkdir(a.dataDir, { recursive: true, mode: 0o700 });
  const secret = await loadOrCreateTokenSecret(a.dataDir);
  const meta = a.database === "postgres" && a.databaseUrl
    ? await PostgresMetaStore.open(a.databaseUrl)
    : new SqliteMetaStore(databasePath(a.dataDir));
  let cache: CacheRecord | null;
  let created = false;
  try {
    cache = await meta.getCache(a.cache.name);
    if (!cache) {
      cache = await meta.createCache({
        name: a.cache.name,
        isPublic: a.cache.isPublic,
        storeDir: DEFAULT_STORE_DIR,
        priority: DEFAULT_PRIORITY,
        upstreamCacheKeyNames: DEFAULT_UPSTREAM_KEYS,
        signingKey: formatSecretKey(await generateSecretKey(`${a.cache.name}-1`)),
        retentionPeriod: null,
      });
      created = true;
    }
  } finally {
    meta.close();
  }
  const token = await new TokenAuthority(secret).mint("admin", ADMIN_TOKEN_VALIDITY, { "*": toLetters(ALL_PERMISSIONS) });
  return { cache, created, token };
}

function nextSteps(configPath: string, a: SetupAnswers, alias: string, cache: CacheRecord, token: string): string {
  // `npx garret` from a checkout, where no garret is on the PATH.
  const garret = selfCommand();
  return [
    "Start the server:",
    `  ${garret} serve --config ${configPath}`,
    "",
    "Connect a machine (this admin token may do anything on every cache for a year; keep it secret,",
    `and mint narrower ones with \`${garret} token create\`):`,
    `  ${garret} login ${alias} ${a.publicUrl} ${token}`,
    `  ${garret} use ${alias}:${cache.name}`,
    "",
    `Cache ${cache.name} (${cache.isPublic ? "public" : "private"}): ${a.publicUrl}/${cache.name}`,
    `Public key: ${publicKeyOf(cache)}`,
  ].join("\n");
}

export async function setupCommand(argv: string[]): Promise<void> {
  const { values: f } = parseArgs({ args: argv, options: OPTIONS });
  if (f.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (f.config !== undefined && f.output !== undefined && resolve(f.config) !== resolve(f.output)) {
    throw new UsageError("--config and --output name the same thing: give one");
  }
  const configPath = resolve(f.output ?? f.config ?? DEFAULT_CONFIG_FILE);
  const refuse = () => new CliError(`${configPath} already exists; pass --force to overwrite it`);
  if (existsSync(configPath) && !f.force) throw refuse();
  if (existsSync(configPath) && statSync(configPath).isDirectory()) throw new UsageError(`--output: ${configPath} is a directory`);
  const alias = f.alias ?? DEFAULT_ALIAS;
  if (!/^[A-Za-z0-9_-]+$/.test(alias)) throw new UsageError("--alias: letters, digits, - and _");

  const ask = new Asker(f.yes === true);
  if (ask.interactive) p.intro("garret setup");
  let answers: SetupAnswers;
  try {
    answers = await collect(ask, f);
    if (ask.interactive) {
      p.note(renderConfig(answers, { redact: true }).trimEnd(), configPath);
      if (!(await ask.confirm(`Write ${configPath} and create ${answers.dataDir}?`))) throw new Cancelled();
    }
  } catch (err) {
    if (err instanceof Cancelled) {
      p.cancel("Setup cancelled; nothing was written.");
      throw new CliError("setup cancelled");
    }
    throw err;
  }

  // Everything is known: only now does anything touch the disk.
  if (existsSync(configPath) && !f.force) throw refuse();
  writeConfig(configPath, renderConfig(answers));
  const { cache, created, token } = await initialize(answers);
  const steps = nextSteps(configPath, answers, alias, cache, token);
  const done = `Wrote ${configPath} (mode 0600); data in ${answers.dataDir}; `
    + (created ? `created cache ${cache.name}.` : `cache ${cache.name} already existed and was kept as it is.`);
  // Plain lines, not a clack box: the token must survive copy and paste unwrapped.
  if (ask.interactive) p.outro(done);
  else process.stdout.write(`${done}\n`);
  process.stdout.write(`\n${steps}\n`);
}
