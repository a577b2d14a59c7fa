import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { runOk, tempDir } from "./nix.ts";
import { pgUrlFor } from "./db.ts";

/** Commands that open the metadata store get the data dir's PostgreSQL database when the suite runs on it. */
const DATABASE_COMMANDS = new Set(["serve", "gc", "fsck", "token", "audit"]);

export function withTestDatabase(args: string[]): string[] {
  if (!DATABASE_COMMANDS.has(args[0]!) || args.includes("--database-url")) return args;
  const i = args.indexOf("--data");
  const url = i >= 0 && args[i + 1] ? pgUrlFor(resolve(args[i + 1]!)) : null;
  return url ? [...args, "--database-url", url] : args;
}

export const REPO = resolve(import.meta.dir, "../..");
export const BUN = process.execPath;

/** The CLI under test: the sources by default, or the built binary when GARRET_BIN is set. */
export function garretCmd(...args: string[]): string[] {
  args = withTestDatabase(args);
  const bin = process.env.GARRET_BIN;
  return bin ? [bin, ...args] : [BUN, join(REPO, "src/main.ts"), ...args];
}

export interface TestServer {
  url: string;
  dataDir: string;
  proc: Subprocess;
  log: () => string;
  stop(): Promise<void>;
}

/**
 * Starts `garret serve` on a free port with a fresh data dir and waits until it listens. The
 * server's log goes to a file, not a pipe, so a test blocked in spawnSync never stalls the server.
 */
export async function startServer(
  opts: { dataDir?: string; env?: Record<string, string>; cwd?: string; args?: string[]; port?: number } = {},
): Promise<TestServer> {
  const dataDir = opts.dataDir ?? tempDir("garret-data-");
  const logPath = join(tempDir("garret-log-"), "server.log");
  const listen = `127.0.0.1:${opts.port ?? 0}`;
  const proc = Bun.spawn(garretCmd("serve", "--listen", listen, "--data", dataDir, ...(opts.args ?? [])), {
    stdout: Bun.file(logPath), stderr: Bun.file(logPath), env: { ...process.env, ...opts.env }, cwd: opts.cwd,
  });
  const log = (): string => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
  const deadline = Date.now() + 20000;
  let url: string | null = null;
  while (!url) {
    const m = /listening on (http:\/\/[^\s]+)/.exec(log());
    if (m) url = m[1]!;
    else if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start:\n${log()}`);
    else await Bun.sleep(20);
  }
  return {
    url, dataDir, proc, log,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

export function mintToken(dataDir: string, ...args: string[]): string {
  return runOk(garretCmd("token", "create", "--data", dataDir, "--sub", "test", "--validity", "1d", ...args)).trim();
}

/** Creates a cache through the API and returns its public key. */
export async function createCache(url: string, token: string, name: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${url}/_api/v1/cache-config/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: false, ...body }),
  });
  if (!res.ok) throw new Error(`creating cache ${name}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { public_key: string }).public_key;
}
