/** Issue 17, safety: a second `garret serve` on a taken port or on a SQLite data dir in use is refused. */
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { run, tempDir } from "../helpers/nix.ts";
import "../helpers/cleanup.ts";

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

test("a second serve on a taken port: address already in use, exit 1", async () => {
  const a = await startServer();
  servers.push(a);
  const port = new URL(a.url).port;
  // On today's code the second server starts; the timeout ends it and the test fails.
  const r = run(garretCmd("serve", "--listen", `127.0.0.1:${port}`, "--data", tempDir("garret-data-")), { timeout: 60000 });
  expect(r.stderr).toContain("address already in use");
  expect(r.code).toBe(1);
  expect(r.stderr).not.toContain("    at ");
  // The first server still answers.
  expect((await fetch(`${a.url}/nix-cache-info`)).status).toBeLessThan(500);
});

test("a second serve on another port but the same SQLite data dir names the holding pid", async () => {
  const dataDir = tempDir("garret-data-");
  const sqlite = ["--database-url", `sqlite://${join(dataDir, "garret.db")}`];
  const a = await startServer({ dataDir, args: sqlite });
  servers.push(a);
  const r = run(garretCmd("serve", "--listen", "127.0.0.1:0", "--data", dataDir, ...sqlite), { timeout: 60000 });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`pid ${a.proc.pid}`);
  expect(r.stderr).toContain("PostgreSQL");
  // Once the holder stops, the data dir is free again.
  await a.stop();
  servers.splice(servers.indexOf(a), 1);
  const b = await startServer({ dataDir, args: sqlite });
  servers.push(b);
});

test("a lock left by a killed server is taken over", async () => {
  const dataDir = tempDir("garret-data-");
  const sqlite = ["--database-url", `sqlite://${join(dataDir, "garret.db")}`];
  const a = await startServer({ dataDir, args: sqlite });
  a.proc.kill("SIGKILL");
  await a.proc.exited;
  servers.push(await startServer({ dataDir, args: sqlite }));
});
