/**
 * Threat (issue 12): garret.db holds every cache's ed25519 secret key. A database, WAL or storage
 * dir readable by other users of the machine hands them every cache's signing key; an operator
 * whose data dir is open to others is told so.
 */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

/** About SQLite's own files: this test pins the engine whatever the suite runs on. */
const SQLITE = (dataDir: string): string[] => ["--database-url", `sqlite://${dataDir}/garret.db`];

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) if (s.proc.exitCode === null) await s.stop();
});

const modeOf = (path: string): number => statSync(path).mode & 0o777;

test("a fresh data dir: database, WAL, SHM 0600; data and storage dirs 0700; no warning", async () => {
  const dataDir = join(tempDir("garret-modes-"), "data");
  const server = await startServer({ dataDir, args: SQLITE(dataDir) });
  servers.push(server);
  await createCache(server.url, mintToken(dataDir, "--create-cache", "*"), "m1"); // writes a signing key
  for (const f of ["garret.db", "garret.db-wal", "garret.db-shm", "token-secret"]) expect([f, modeOf(join(dataDir, f))]).toEqual([f, 0o600]);
  expect(modeOf(dataDir)).toBe(0o700);
  expect(modeOf(join(dataDir, "storage"))).toBe(0o700);
  expect(server.log()).not.toContain("warning");
});

test("files an older release left readable are made private; an open data dir is warned about", async () => {
  const dataDir = join(tempDir("garret-modes-"), "data");
  mkdirSync(dataDir, { mode: 0o755 });
  chmodSync(dataDir, 0o755);
  writeFileSync(join(dataDir, "garret.db"), "", { mode: 0o644 });
  chmodSync(join(dataDir, "garret.db"), 0o644);
  const server = await startServer({ dataDir, args: SQLITE(dataDir) });
  servers.push(server);
  expect(modeOf(join(dataDir, "garret.db"))).toBe(0o600);
  expect(server.log()).toContain(`warning: the data dir ${dataDir} is open to other users (mode 0755)`);
  expect(server.log()).toContain(`chmod 700 ${dataDir}`);
});
