/**
 * Crash leftovers (issue 5, acceptance 5): a server killed mid-upload leaves a pending pack record
 * and a temp file; the collector leaves them alone within the grace period and removes them after.
 * The killed server's upload lease lapses after GARRET_UPLOAD_LEASE_TTL (1 s here).
 */
import { afterAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { buildExpr, requireNix, SH, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { danglingChunks, uploadPath } from "../helpers/api.ts";
import { count, GC_TEST_ENV, runGc } from "./helpers.ts";

requireNix();

const MiB = 1024 * 1024;
let server: TestServer | null = null;

afterAll(async () => {
  await server?.stop();
});

const tmpFiles = (dataDir: string): string[] => readdirSync(join(dataDir, "storage", ".tmp")).filter((f) => f.endsWith(".part"));

test("crash leftovers are collected after the grace period, not before", async () => {
  const path = buildExpr(`let ${SH} in sh "leftover-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${24 * MiB} /dev/urandom > $out/big"`);
  const env = { ...GC_TEST_ENV, GARRET_UPLOAD_LEASE_TTL: "1" };
  server = await startServer({ env });
  const { dataDir } = server;
  const token = mintToken(dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  await createCache(server.url, token, "crash");

  // Send 12 MiB, then stall; kill the server once its pack file has bytes.
  const dumper = Bun.spawn(["nix-store", "--dump", path], { stdout: "pipe", stderr: "ignore" });
  const dump = dumper.stdout;
  let sent = 0;
  let release!: () => void;
  const stalled = new Promise<void>((r) => (release = r));
  const body = dump.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      if (sent >= 12 * MiB) await stalled;
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  }));
  const victim = server;
  const upload = uploadPath(server.url, token, "crash", path, body).then((r) => r.status, () => "failed");
  const deadline = Date.now() + 20000;
  while (count(dataDir, "SELECT COUNT(*) AS n FROM packs WHERE state = 'pending'") === 0
    || tmpFiles(dataDir).length === 0 || sent < 12 * MiB) {
    if (Date.now() > deadline) throw new Error("upload never started writing");
    await Bun.sleep(50);
  }
  await Bun.sleep(300);
  victim.proc.kill("SIGKILL");
  await victim.proc.exited;
  release();
  dumper.kill();
  expect(await upload).not.toBe(200);
  server = null;

  expect(count(dataDir, "SELECT COUNT(*) AS n FROM packs WHERE state = 'pending'")).toBe(1);
  expect(tmpFiles(dataDir).length).toBe(1);
  await Bun.sleep(1100); // the dead server's lease lapses

  // Within the grace period: untouched.
  const early = runGc(dataDir, ["--grace", "4"]);
  expect([early.packs, early.leftovers]).toEqual([0, 0]);
  expect(count(dataDir, "SELECT COUNT(*) AS n FROM packs")).toBe(1);
  expect(tmpFiles(dataDir).length).toBe(1);

  await Bun.sleep(3500);
  const late = runGc(dataDir, ["--grace", "4"]);
  expect(late.packs).toBe(1);
  expect(late.leftovers).toBe(1);
  expect(late.bytes).toBeGreaterThan(4 * MiB);
  expect(count(dataDir, "SELECT COUNT(*) AS n FROM packs")).toBe(0);
  expect(tmpFiles(dataDir)).toEqual([]);
  expect(danglingChunks(dataDir)).toEqual([]);

  // The server comes back and a re-push works.
  server = await startServer({ dataDir, env });
  const again = await uploadPath(server.url, token, "crash", path);
  expect(again.status).toBe(200);
}, 90000);
