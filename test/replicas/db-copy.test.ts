/**
 * `garret db copy` (issue 13, acceptance 6): a populated SQLite installation moved to PostgreSQL
 * (a real server). Stock Nix substitutes everything from a server on the copy, nothing re-pushed;
 * GC on the copy frees what GC on the original would; a non-empty target is refused.
 */
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { buildClosure, buildExpr, deleteClosure, narOf, outcome, requireNix, run, SH, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { uploadPath } from "../helpers/api.ts";
import { freshPgDatabase } from "../helpers/pg.ts";

requireNix();

const MiB = 1024 * 1024;
const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

test("db copy: a SQLite installation moved to PostgreSQL serves and collects the same", async () => {
  // The data dir's own garret.db, pinned whatever engine the suite runs on.
  const dataDir = tempDir("garret-data-");
  const sqliteUrl = `sqlite://${join(dataDir, "garret.db")}`;
  const original = await startServer({ dataDir, args: ["--database-url", sqliteUrl] });
  servers.push(original);
  const token = mintToken(dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--delete", "*");
  const key = await createCache(original.url, token, "moved", { is_public: true });
  const closure = buildClosure(uniqueTag(), { bigBytes: 2 * MiB });
  const nar = narOf(closure.top);
  for (const p of [closure.dep, closure.top]) expect((await uploadPath(original.url, token, "moved", p)).status).toBe(200);
  // A path deleted before the move: what GC will free.
  const gone = buildExpr(`let ${SH} in sh "gone-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${MiB} /dev/urandom > $out/f"`);
  expect((await uploadPath(original.url, token, "moved", gone)).status).toBe(200);
  const del = await fetch(`${original.url}/_api/v1/paths/moved/${gone.split("/").pop()!.slice(0, 32)}`, {
    method: "DELETE", headers: { authorization: `Bearer ${token}` },
  });
  expect(del.status).toBeLessThan(300);
  await original.stop();
  servers.pop();

  const env = { ...process.env, GARRET_GC_GRACE: "0" };
  const dryRun = (url: string) => JSON.parse(run(garretCmd("gc", "--data", dataDir, "--dry-run", "--json", "--database-url", url), { env }).stdout);
  const before = dryRun(sqliteUrl);
  expect(before.bytes).toBeGreaterThan(0);

  const pgUrl = await freshPgDatabase();
  const copy = run(garretCmd("db", "copy", "--from", sqliteUrl, "--to", pgUrl, "--json"));
  expect(copy.code).toBe(0);
  expect(JSON.parse(copy.stdout).tables).toMatchObject({ caches: 1, objects: 2 });
  const again = run(garretCmd("db", "copy", "--from", sqliteUrl, "--to", pgUrl));
  expect(again.code).toBe(1);
  expect(again.stderr).toContain("not empty");
  expect(again.stderr.trim().split("\n")).toHaveLength(1);

  expect(dryRun(pgUrl)).toEqual(before);
  const moved = await startServer({ dataDir, args: ["--database-url", pgUrl] });
  servers.push(moved);
  deleteClosure(closure.top);
  expect(outcome(substitute(`${moved.url}/moved`, key, closure.top))).toBe("ok");
  expect(narOf(closure.top).equals(nar)).toBe(true);
  // New ids on the copy continue after the copied ones.
  await createCache(moved.url, token, "after");
  const real = run(garretCmd("gc", "--data", dataDir, "--json", "--database-url", pgUrl), { env });
  expect(real.code).toBe(0);
  expect(JSON.parse(real.stdout)).toMatchObject({ objects: before.objects, nars: before.nars, chunks: before.chunks, bytes: before.bytes });
});

test("db copy refuses a target that is not PostgreSQL and a bad URL, in one line", () => {
  const r = run(garretCmd("db", "copy", "--from", "sqlite:///tmp/x.db", "--to", "mysql://x"));
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
});
