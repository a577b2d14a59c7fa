/**
 * Global collection (issue 5, acceptance 3 and 6): destroying a cache frees bytes unique to it,
 * packs shared with live data are compacted and still serve stock Nix, --dry-run removes nothing
 * and predicts exactly what the real run then removes; `garret cache rm` removes one path.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClosure, buildExpr, deleteClosure, narOf, requireNix, run, runOk, SH, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { danglingChunks, openDb, pathInfo, storageFiles, storedBytes, uploadPath } from "../helpers/api.ts";
import { count, GC_TEST_ENV, narinfoStatus, runGc } from "./helpers.ts";

requireNix();

const MiB = 1024 * 1024;
let server: TestServer;
let token: string;
let netrc: string;
const keys: Record<string, string> = {};

beforeAll(async () => {
  server = await startServer({ env: GC_TEST_ENV });
  token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--destroy-cache", "*", "--delete", "*");
  for (const c of ["gone", "live"]) keys[c] = await createCache(server.url, token, c);
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
});

afterAll(async () => {
  await server?.stop();
});

async function upload(cache: string, ...paths: string[]): Promise<void> {
  for (const p of paths) expect((await uploadPath(server.url, token, cache, p)).status).toBe(200);
}

function packsOf(path: string): string[] {
  const db = openDb(server.dataDir);
  try {
    return (db.query(`SELECT DISTINCT p.storage_key AS k FROM nars n JOIN nar_chunks nc ON nc.nar_id = n.id
      JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id WHERE n.nar_hash = ?`)
      .all(pathInfo(path).narHash.slice(7)) as { k: string }[]).map((r) => r.k);
  } finally {
    db.close();
  }
}

function snapshot(): string {
  const db = openDb(server.dataDir);
  try {
    const tables = ["objects", "nars", "nar_chunks", "chunks", "packs"];
    const rows = tables.map((t) => JSON.stringify(db.query(`SELECT * FROM ${t} ORDER BY 1, 2`).all()));
    return rows.join("\n") + JSON.stringify(storageFiles(server.dataDir));
  } finally {
    db.close();
  }
}

test("destroying a cache frees its unique bytes, compacts shared packs; dry run predicts the real run", async () => {
  const tag = uniqueTag();
  // `big` (4 MiB) goes to "gone"; `edit` shares its first MiB and lives in "live". Their pack
  // ends up mostly dead once "gone" is destroyed: a compaction candidate.
  const big = buildExpr(`let ${SH} in sh "gc-big-${tag}" "/bin/mkdir $out; /usr/bin/head -c ${4 * MiB} /dev/urandom > $out/f"`);
  const edit = buildExpr(`let ${SH} in sh "gc-edit-${tag}" ''
    /bin/mkdir $out
    /usr/bin/head -c ${MiB} ${big}/f > $out/f
    /usr/bin/head -c ${MiB} /dev/urandom >> $out/f
  ''`);
  const unique = buildClosure(uniqueTag(), { bigBytes: 2 * MiB }); // only in "gone"
  const kept = buildClosure(uniqueTag(), { bigBytes: MiB }); // only in "live"
  await upload("gone", big, unique.dep, unique.top);
  await upload("live", edit, kept.dep, kept.top);
  const bigPack = packsOf(big);
  const uniquePacks = packsOf(unique.dep);
  expect(bigPack.length).toBe(1);
  expect(packsOf(edit)).toContain(bigPack[0]!); // the shared chunks live in big's pack

  const del = await fetch(`${server.url}/_api/v1/cache-config/gone`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
  expect(del.status).toBe(200);

  const before = snapshot();
  const bytesBefore = storedBytes(server.dataDir);
  const dry = runGc(server.dataDir, ["--dry-run"]);
  expect(snapshot()).toBe(before); // nothing removed, in the index or in storage
  expect(dry.dry_run).toBe(true);
  expect(dry.nars).toBe(3);
  expect(dry.compacted).toBe(1);
  expect(dry.chunks).toBeGreaterThan(40);

  const real = runGc(server.dataDir);
  expect({ ...real, dry_run: true }).toEqual(dry);
  expect(real.objects).toBe(0); // destroying the cache removed its objects already
  // The unique closure's pack and big's old pack left storage; the bytes that went are reported.
  const keysLeft = storageFiles(server.dataDir).map((f) => f.path);
  for (const k of [...uniquePacks, ...bigPack]) expect(keysLeft.some((p) => p.endsWith(k))).toBe(false);
  expect(bytesBefore - storedBytes(server.dataDir)).toBe(real.bytes);
  expect(real.bytes).toBeGreaterThan(5 * MiB);
  expect(danglingChunks(server.dataDir)).toEqual([]);
  expect(count(server.dataDir, "SELECT COUNT(*) AS n FROM chunks WHERE state != 'valid'")).toBe(0);

  // A second run finds nothing.
  const again = runGc(server.dataDir);
  expect([again.objects, again.nars, again.chunks, again.packs, again.compacted]).toEqual([0, 0, 0, 0, 0]);

  // Live paths, including the one whose chunks were moved, substitute with stock Nix.
  for (const top of [edit, kept.top]) {
    const nars = [narOf(top)];
    deleteClosure(top);
    const r = substitute(`${server.url}/live`, keys.live!, top, netrc);
    expect(r.code).toBe(0);
    expect(narOf(top).equals(nars[0]!)).toBe(true);
  }
}, 90000);

test("garret cache rm removes a path, refuses one others need unless --recursive, and gc frees it", async () => {
  const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
  runOk(garretCmd("login", "t", server.url, token), { env });
  const c = buildClosure(uniqueTag(), { bigBytes: MiB });
  await upload("live", c.dep, c.top);

  const refused = run(garretCmd("cache", "rm", "t:live", c.dep), { env });
  expect(refused.code).toBe(1);
  expect(refused.stderr.trim().split("\n").length).toBe(1);
  expect(refused.stderr).toContain("ObjectInUse");
  expect(await narinfoStatus(server.url, token, "live", c.dep)).toBe(200);

  runOk(garretCmd("cache", "rm", "t:live", c.top), { env });
  expect(await narinfoStatus(server.url, token, "live", c.top)).toBe(404);
  expect(await narinfoStatus(server.url, token, "live", c.dep)).toBe(200);
  await upload("live", c.top);
  const out = runOk(garretCmd("cache", "rm", "t:live", c.dep, "--recursive"), { env });
  expect(out).toContain(c.top);
  expect(out).toContain(c.dep);
  for (const p of [c.top, c.dep]) expect(await narinfoStatus(server.url, token, "live", p)).toBe(404);
  const r = runGc(server.dataDir);
  expect(r.nars).toBe(2);
  expect(r.bytes).toBeGreaterThan(MiB);
  expect(danglingChunks(server.dataDir)).toEqual([]);
}, 60000);
