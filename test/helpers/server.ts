import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { runOk, tempDir } from "./nix.ts";

export const REPO = resolve(import.meta.dir, "../..");
export const BUN = process.execPath;

/** The CLI under test: the sources by default, or the built binary when GARRET_BIN is set. */
export function garretCmd(...args: string[]): string[] {
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

/** Starts `garret serve` on a free port with a fresh data dir and waits until it listens. */
export async function startServer(opts: { dataDir?: string; env?: Record<string, string> } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? tempDir("garret-data-");
  const proc = Bun.spawn(garretCmd("serve", "--listen", "127.0.0.1:0", "--data", dataDir), {
    stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env },
  });
  let logText = "";
  const decoder = new TextDecoder();
  const reader = proc.stderr.getReader();
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${logText}`)), 20000);
    (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        logText += decoder.decode(value);
        const m = /listening on (http:\/\/[^\s]+)/.exec(logText);
        if (m) {
          clearTimeout(timer);
          resolveUrl(m[1]!);
        }
      }
      clearTimeout(timer);
      reject(new Error(`server exited:\n${logText}`));
    })().catch(() => {});
  });
  return {
    url, dataDir, proc, log: () => logText,
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
