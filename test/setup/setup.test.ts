/**
 * garret setup: driven by flags with --yes, and interactively through a pseudo-terminal.
 * Checks the written config (parsed back as TOML), its mode, the data dir it prepares, that
 * `garret serve --config` runs with it, and that cancelling writes nothing.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { SqliteMetaStore } from "../../src/db/sqlite.ts";
import { run, tempDir } from "../helpers/nix.ts";
import { garretCmd } from "../helpers/server.ts";
import { S3_BUCKET, S3_KEY, S3_SECRET, startS3, type TestS3 } from "../helpers/s3.ts";
import { KEY, Pty } from "./pty.ts";
import { freshPgDatabase } from "../helpers/pg.ts";
import { PostgresMetaStore } from "../../src/db/postgres.ts";

// The wizard must not pick up settings from the environment running the tests.
const CLEAN_ENV = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith("GARRET_")).map((k) => [k, ""]));

function setup(args: string[], cwd?: string) {
  return run(garretCmd("setup", ...args), { cwd, env: CLEAN_ENV, timeout: 30000 });
}

const mode = (path: string): number => statSync(path).mode & 0o777;

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** `garret serve --config FILE`, nothing else: the config alone must be enough. */
async function serveWith(config: string, cwd: string): Promise<{ url: string; log: () => string; stop(): Promise<void> }> {
  const logPath = join(tempDir("garret-log-"), "serve.log");
  const proc = Bun.spawn(garretCmd("serve", "--config", config), {
    cwd, stdout: Bun.file(logPath), stderr: Bun.file(logPath), env: { ...process.env, ...CLEAN_ENV },
  });
  const log = (): string => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
  const deadline = Date.now() + 20000;
  for (;;) {
    const m = /listening on (http:\/\/[^\s]+)/.exec(log());
    if (m) return { url: m[1]!, log, async stop() { proc.kill("SIGTERM"); await proc.exited; } };
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`garret serve --config did not start:\n${log()}`);
    }
    await Bun.sleep(20);
  }
}

/** The admin token from the printed `garret login` line. */
function printedToken(stdout: string): string {
  const m = /garret login garret (\S+) (\S+)/.exec(stdout);
  if (!m) throw new Error(`no login command in:\n${stdout}`);
  return m[2]!;
}

async function cacheInDb(dataDir: string, name: string) {
  const meta = new SqliteMetaStore(join(dataDir, "garret.db"));
  try {
    return await meta.getCache(name);
  } finally {
    meta.close();
  }
}

describe("garret setup --yes", () => {
  test("flags produce the expected config (0600), a token secret and the first cache; serve --config runs with it", async () => {
    const dir = tempDir("garret-setup-");
    const port = await freePort();
    const config = join(dir, "etc", "garret.toml");
    const dataDir = join(dir, "data");
    const url = `http://127.0.0.1:${port}`;
    const r = setup(["--yes", "--output", config, "--listen", `127.0.0.1:${port}`, "--public-url", `${url}/`,
      "--data", dataDir, "--storage", "local", "--storage-path", join(dir, "packs"), "--database", "sqlite",
      "--compression", "br", "--compression-level", "7", "--retention", "30d", "--cache", "team-ci", "--public"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);

    expect(parseToml(readFileSync(config, "utf8"))).toEqual({
      listen: `127.0.0.1:${port}`,
      "public-url": url,
      "data-dir": dataDir,
      compression: { type: "br", level: 7 },
      gc: { retention: 30 * 86400 },
      storage: { type: "local", path: join(dir, "packs") },
    });
    expect(mode(config)).toBe(0o600);
    expect(readdirSync(join(dir, "etc"))).toEqual(["garret.toml"]); // no temporary file left
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(join(dataDir, "token-secret"))).toBe(0o600);
    expect(readFileSync(join(dataDir, "token-secret"), "utf8").trim().length).toBeGreaterThan(40);
    const cache = await cacheInDb(dataDir, "team-ci");
    expect(cache).toMatchObject({ name: "team-ci", isPublic: true, retentionPeriod: null, storeDir: "/nix/store" });

    expect(r.stdout).toContain(`garret serve --config ${config}`);
    expect(r.stdout).toContain("garret use garret:team-ci");
    const token = printedToken(r.stdout);

    const server = await serveWith(config, tempDir("garret-elsewhere-"));
    try {
      expect(server.url).toBe(url);
      // Public: anonymous Nix can read it.
      const info = await fetch(`${url}/team-ci/nix-cache-info`);
      expect(info.status).toBe(200);
      expect(await info.text()).toContain("StoreDir: /nix/store");
      // The printed admin token works, and the cache key is the one printed.
      const res = await fetch(`${url}/_api/v1/cache-config/team-ci`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const view = (await res.json()) as { public_key: string; is_public: boolean };
      expect(view.is_public).toBe(true);
      expect(r.stdout).toContain(`Public key: ${view.public_key}`);
    } finally {
      await server.stop();
    }
  }, 40000);

  test("--yes alone takes the defaults (./garret.toml, ./garret-data, zstd, keep forever, private cache main)", async () => {
    const dir = tempDir("garret-setup-");
    const r = setup(["--yes"], dir);
    expect(r.code).toBe(0);
    expect(parseToml(readFileSync(join(dir, "garret.toml"), "utf8"))).toEqual({
      listen: "127.0.0.1:8080",
      "public-url": "http://127.0.0.1:8080",
      "data-dir": join(dir, "garret-data"),
      compression: { type: "zstd", level: 3 },
      gc: { retention: 0 },
      storage: { type: "local" },
    });
    expect(await cacheInDb(join(dir, "garret-data"), "main")).toMatchObject({ isPublic: false });
  });

  test("an existing config is kept unless --force; bad flags are one line and write nothing", () => {
    const dir = tempDir("garret-setup-");
    expect(setup(["--yes"], dir).code).toBe(0);
    const before = readFileSync(join(dir, "garret.toml"), "utf8");
    const again = setup(["--yes", "--cache", "other"], dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`error: ${join(dir, "garret.toml")} already exists; pass --force to overwrite it\n`);
    expect(readFileSync(join(dir, "garret.toml"), "utf8")).toBe(before);
    const forced = setup(["--yes", "--force", "--compression", "none"], dir);
    expect(forced.code).toBe(0);
    expect((parseToml(readFileSync(join(dir, "garret.toml"), "utf8")) as { compression: unknown }).compression).toEqual({ type: "none" });
    expect(mode(join(dir, "garret.toml"))).toBe(0o600);

    const empty = tempDir("garret-setup-");
    for (const [args, message] of [
      [["--listen", "nowhere"], "--listen: use HOST:PORT"],
      [["--public-url", "cache.example.com"], "--public-url: use an http:// or https:// URL"],
      [["--database-url", "postgres://x@db/garret"], "--database-url: needs --database postgres"],
      [["--compression", "lz4"], "--compression: must be one of zstd, br, none"],
      [["--retention", "soon"], "--retention: seconds, or a duration"],
      [["--cache", "no/slash"], "--cache: 1-50 characters"],
    ] as const) {
      const bad = setup(["--yes", ...args], empty);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toStartWith(`error: ${message}`);
      expect(bad.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
    // Without a terminal and without --yes, a question nobody answered is an error, not a hang.
    const noTty = setup(["--listen", "127.0.0.1:9999"], empty);
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toStartWith("error: garret setup needs a terminal to ask for --public-url");
    expect(readdirSync(empty)).toEqual([]);
  });
});

/** One s3rver for the file, started by the first test that needs it. */
let s3Server: TestS3 | undefined;
const startedS3 = async (): Promise<TestS3> => (s3Server ??= await startS3());
afterAll(async () => {
  await s3Server?.stop();
});

describe("garret setup with S3 storage", () => {
  test("good credentials are checked live and written; wrong ones and a missing bucket are one line, exit 1, nothing written", async () => {
    const s3 = await startedS3();
    const dir = tempDir("garret-setup-");
    const port = await freePort();
    const s3Args = (key: string, secret: string, bucket = S3_BUCKET) => ["--yes", "--listen", `127.0.0.1:${port}`,
      "--storage", "s3", "--s3-bucket", bucket, "--s3-endpoint", s3.endpoint, "--s3-region", "us-east-1",
      "--s3-prefix", "garret/", "--s3-access-key-id", key, "--s3-secret-access-key", secret];

    // (s3rver checks the key id, not HeadBucket's signature, so the wrong key is the id.)
    const wrong = setup(s3Args("NOT-A-KEY", "not-the-secret"), dir);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^error: storage: S3 rejected the credentials for bucket "garret-test" \((?:HTTP \d{3}|\w+)\): check the access key and secret\n$/);
    const missing = setup(s3Args(S3_KEY, S3_SECRET, "no-such-bucket"), dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('error: storage: S3 bucket "no-such-bucket" does not exist\n');
    expect(readdirSync(dir)).toEqual([]);

    const good = setup(s3Args(S3_KEY, S3_SECRET), dir);
    expect(good.stderr).toBe("");
    expect(good.code).toBe(0);
    const config = join(dir, "garret.toml");
    expect(mode(config)).toBe(0o600);
    expect((parseToml(readFileSync(config, "utf8")) as { storage: unknown }).storage).toEqual({
      type: "s3", bucket: S3_BUCKET, region: "us-east-1", endpoint: s3.endpoint, "force-path-style": true,
      prefix: "garret/", "access-key-id": S3_KEY, "secret-access-key": S3_SECRET,
    });
    const server = await serveWith(config, dir);
    try {
      expect(server.log()).toContain("storage: s3");
      expect((await fetch(`${server.url}/main/nix-cache-info`)).status).toBe(404); // private: hidden
    } finally {
      await server.stop();
    }
  }, 40000);
});

const BACKSPACE = KEY.backspace;

describe("garret setup on a terminal", () => {
  const open: Pty[] = [];
  const pty = (args: string[], cwd: string): Pty => {
    const p = new Pty(garretCmd("setup", ...args), { cwd, env: CLEAN_ENV });
    open.push(p);
    return p;
  };
  afterEach(() => {
    for (const p of open.splice(0)) p.kill();
  });

  test("answers typed at the prompts produce the config", async () => {
    const dir = tempDir("garret-setup-");
    const t = pty([], dir);
    await t.answer("Listen on which address?", "0.0.0.0:9000");
    await t.answer("Public URL", "https://cache.example.com");
    await t.answer("Data directory", "state"); // relative to where setup runs
    await t.answer("Where should NAR data be stored?", ""); // local (the default)
    await t.answer("Storage directory", ""); // <data dir>/storage
    await t.expect("PostgreSQL");
    t.send(KEY.enter); // SQLite
    await t.answer("Compression of stored chunks", KEY.down + KEY.down); // none
    await t.answer("Keep paths nobody pulls for how long?", "12w");
    await t.answer("Name of the first cache", "nightly");
    await t.answer("Who may pull from nightly?", KEY.down); // public
    await t.answer(`Write ${join(dir, "garret.toml")}`, ""); // yes
    await t.expect("garret use garret:nightly");
    expect(await t.exited()).toBe(0);

    const config = join(dir, "garret.toml");
    expect(parseToml(readFileSync(config, "utf8"))).toEqual({
      listen: "0.0.0.0:9000",
      "public-url": "https://cache.example.com",
      "data-dir": join(dir, "state"),
      compression: { type: "none" },
      gc: { retention: 12 * 604800 },
      storage: { type: "local" },
    });
    expect(mode(config)).toBe(0o600);
    expect(await cacheInDb(join(dir, "state"), "nightly")).toMatchObject({ isPublic: true });
    expect(t.screen).toMatch(/garret login garret https:\/\/cache\.example\.com ey\S+/);
  }, 30000);

  test("an invalid answer is asked again; S3 with wrong credentials is re-asked until the live check passes", async () => {
    const s3 = await startedS3();
    const dir = tempDir("garret-setup-");
    const t = pty(["--listen", "127.0.0.1:9001", "--public-url", "http://127.0.0.1:9001", "--data", "d"], dir);
    await t.answer("Where should NAR data be stored?", KEY.down);
    await t.answer("S3 bucket", S3_BUCKET);
    await t.answer("S3 endpoint URL", "minio:9000");
    await t.expect("use an http:// or https:// URL");
    t.send(BACKSPACE.repeat("minio:9000".length) + s3.endpoint + KEY.enter);
    await t.answer("S3 region", "");
    await t.answer("Access key ID", "NOT-A-KEY");
    await t.answer("Secret access key", "wrong-secret");
    await t.expect("S3 rejected the credentials");
    // Asked again with the previous answers filled in: Enter keeps them.
    await t.answer("S3 bucket", "");
    await t.answer("S3 endpoint URL", "");
    await t.answer("S3 region", "");
    await t.answer("Access key ID", BACKSPACE.repeat("NOT-A-KEY".length) + S3_KEY);
    await t.answer("Secret access key", S3_SECRET);
    await t.expect(`S3 bucket ${S3_BUCKET} is reachable`);
    await t.answer("Database", "");
    await t.answer("Compression of stored chunks", "");
    await t.answer("Keep paths nobody pulls for how long?", "");
    await t.answer("Name of the first cache", "");
    await t.answer("Who may pull from main?", "");
    await t.expect('secret-access-key = "<hidden>"'); // the summary never shows the secret
    await t.answer("Write ", "");
    expect(await t.exited()).toBe(0);
    expect(parseToml(readFileSync(join(dir, "garret.toml"), "utf8"))).toMatchObject({
      "data-dir": join(dir, "d"),
      storage: { type: "s3", bucket: S3_BUCKET, endpoint: s3.endpoint, "access-key-id": S3_KEY, "secret-access-key": S3_SECRET },
    });
  }, 40000);

  test("Ctrl-C at a prompt, even the last one, writes nothing", async () => {
    for (const stopAt of ["Public URL", "Write "]) {
      const dir = tempDir("garret-setup-");
      const t = pty([], dir);
      await t.answer("Listen on which address?", "");
      if (stopAt === "Write ") {
        for (const prompt of ["Public URL", "Data directory", "Where should NAR data be stored?", "Storage directory",
          "PostgreSQL", "Compression of stored chunks", "Keep paths nobody pulls", "Name of the first cache",
          "Who may pull from main?"]) {
          await t.answer(prompt, "");
        }
      }
      await t.expect(stopAt);
      t.send(KEY.ctrlC);
      await t.expect("nothing was written");
      expect(await t.exited()).toBe(1);
      expect(readdirSync(dir)).toEqual([]);
    }
  }, 30000);
});

describe("garret setup --database postgres", () => {
  test("checks the server live, writes [database] url, creates the first cache there; serve --config uses it", async () => {
    const dir = tempDir("garret-setup-");
    const config = join(dir, "garret.toml");
    const unreachable = setup(["--yes", "--output", config, "--data", join(dir, "data"), "--database", "postgres",
      "--database-url", "postgres://garret:hunter2@127.0.0.1:1/garret"], dir);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toStartWith("error: database: ");
    expect(unreachable.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(unreachable.stderr).not.toContain("hunter2");
    expect(existsSync(config)).toBe(false);

    const url = await freshPgDatabase();
    const port = await freePort();
    const r = setup(["--yes", "--output", config, "--listen", `127.0.0.1:${port}`, "--data", join(dir, "data"),
      "--database", "postgres", "--database-url", url, "--cache", "pg-first", "--public"], dir);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect((parseToml(readFileSync(config, "utf8")) as { database: unknown }).database).toEqual({ url });
    const meta = await PostgresMetaStore.open(url, 1);
    try {
      expect(await meta.getCache("pg-first")).toMatchObject({ isPublic: true });
    } finally {
      await meta.end();
    }
    expect(existsSync(join(dir, "data", "garret.db"))).toBe(false);
    const server = await serveWith(config, tempDir("garret-elsewhere-"));
    try {
      expect((await fetch(`${server.url}/pg-first/nix-cache-info`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  }, 60000);
});
