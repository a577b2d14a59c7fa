import type { Subprocess } from "bun";
import { join } from "node:path";
import { REPO } from "./server.ts";
import { tempDir } from "./nix.ts";

export const S3_BUCKET = "garret-test";
// s3rver's built-in account.
export const S3_KEY = "S3RVER";
export const S3_SECRET = "S3RVER";

export interface TestS3 {
  endpoint: string;
  port: number;
  dir: string;
  proc: Subprocess;
  stop(): Promise<void>;
  /** Starts it again on the same port and directory (after stop). */
  restart(): Promise<void>;
  /** Environment for `garret serve` to use this server. */
  env(bucket?: string): Record<string, string>;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

async function waitForPort(port: number, proc: Subprocess): Promise<void> {
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return;
    } catch {
      if (proc.exitCode !== null) throw new Error("s3rver exited");
      if (Date.now() > deadline) throw new Error("s3rver did not start");
      await Bun.sleep(50);
    }
  }
}

/**
 * A real S3-compatible server process (s3rver, run by Node) on loopback with one bucket. Tests
 * that need it fail when it cannot start: CI installs it with `npm ci`.
 */
export async function startS3(): Promise<TestS3> {
  const dir = tempDir("garret-s3-");
  const port = await freePort();
  const spawn = () => Bun.spawn(["node", join(REPO, "node_modules/s3rver/bin/s3rver.js"), "-d", dir, "-a", "127.0.0.1",
    "-p", String(port), "--silent", "--configure-bucket", S3_BUCKET], { stdout: "ignore", stderr: "ignore" });
  const s3: TestS3 = {
    endpoint: `http://127.0.0.1:${port}`, port, dir, proc: spawn(),
    async stop() {
      s3.proc.kill("SIGKILL");
      await s3.proc.exited;
    },
    async restart() {
      s3.proc = spawn();
      await waitForPort(port, s3.proc);
    },
    env(bucket = S3_BUCKET) {
      return {
        GARRET_STORAGE_TYPE: "s3", GARRET_S3_BUCKET: bucket, GARRET_S3_ENDPOINT: s3.endpoint,
        GARRET_S3_ACCESS_KEY_ID: S3_KEY, GARRET_S3_SECRET_ACCESS_KEY: S3_SECRET, GARRET_S3_REGION: "us-east-1",
        GARRET_S3_MAX_ATTEMPTS: "2",
      };
    },
  };
  await waitForPort(port, s3.proc);
  return s3;
}
