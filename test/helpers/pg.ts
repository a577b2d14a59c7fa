/**
 * PostgreSQL for tests. GARRET_TEST_DATABASE_URL names a server where tests may CREATE DATABASE
 * (and puts the whole suite on PostgreSQL); GARRET_TEST_PG_URL names one for the tests that always
 * use PostgreSQL (the metadata contract) without moving the rest. Without either, a throwaway cluster is started (initdb into a temp dir, loopback only, as the
 * `postgres` user when run as root) from PostgreSQL's binaries in /usr/lib/postgresql/N/bin or on
 * PATH. No server and no binaries: the test fails; it never skips.
 */
import { SQL } from "bun";
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let admin: Promise<string> | null = null;
let cluster: { dir: string; bin: string; asRoot: boolean } | null = null;

export function pgBin(): string {
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    for (const v of readdirSync(base).sort((a, b) => Number(b) - Number(a))) {
      if (existsSync(join(base, v, "bin", "initdb"))) return join(base, v, "bin");
    }
  }
  const which = Bun.which("initdb");
  if (which) return which.replace(/\/initdb$/, "");
  throw new Error("PostgreSQL is needed for this test: set GARRET_TEST_DATABASE_URL or install postgresql (initdb not found)");
}

function run(argv: string[], asRoot: boolean): void {
  const cmd = asRoot ? ["runuser", "-u", "postgres", "--", ...argv] : argv;
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${argv[0]} failed: ${p.stderr.toString().trim().split("\n").pop()}`);
}

async function startCluster(): Promise<string> {
  const bin = pgBin();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), "garret-pg-"));
  if (asRoot) {
    const pw = Bun.spawnSync(["id", "-u", "postgres"]);
    const gid = Bun.spawnSync(["id", "-g", "postgres"]);
    if (pw.exitCode !== 0) throw new Error("running as root needs a 'postgres' user to run a throwaway cluster");
    chownSync(dir, Number(pw.stdout.toString()), Number(gid.stdout.toString()));
  }
  const port = 56000 + Math.floor(Math.random() * 4000);
  run([join(bin, "initdb"), "-D", join(dir, "data"), "-U", "garret", "--auth=trust", "-E", "UTF8", "--no-sync"], asRoot);
  run([join(bin, "pg_ctl"), "-D", join(dir, "data"), "-w", "-l", join(dir, "log"), "-o",
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200`, "start"], asRoot);
  cluster = { dir, bin, asRoot };
  process.on("exit", stopCluster);
  return `postgres://garret@127.0.0.1:${port}/postgres`;
}

function stopCluster(): void {
  if (!cluster) return;
  const c = cluster;
  cluster = null;
  try {
    run([join(c.bin, "pg_ctl"), "-D", join(c.dir, "data"), "-m", "immediate", "stop"], c.asRoot);
  } catch { /* already gone */ }
  rmSync(c.dir, { recursive: true, force: true });
}

/** A URL of a server where databases may be created. */
export function pgAdminUrl(): Promise<string> {
  const given = process.env.GARRET_TEST_DATABASE_URL || process.env.GARRET_TEST_PG_URL;
  admin ??= given ? Promise.resolve(given) : startCluster();
  return admin;
}

/** A fresh, empty database on the test server; its URL. */
export async function freshPgDatabase(admin?: string): Promise<string> {
  const url = admin ?? await pgAdminUrl();
  const name = `garret_t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const sql = new SQL(url);
  try {
    await sql.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await sql.close();
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** The engine the suite runs on: PostgreSQL when GARRET_TEST_DATABASE_URL is set, else SQLite. */
export const testEngine = (): "postgres" | "sqlite" => (process.env.GARRET_TEST_DATABASE_URL ? "postgres" : "sqlite");
