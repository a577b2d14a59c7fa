/**
 * fsck (issue 5, acceptance 7): a chunk lost behind the server's back is found and reported per
 * cache; --repair hides the path (narinfo 404, reported missing to pushers) so clients fall back
 * to other substituters; a re-push heals it and stock Nix substitutes it again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { statSync, truncateSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { buildClosure, deleteClosure, narOf, outcome, requireNix, run, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { danglingChunks, openDb, pathInfo, storeHashOf, uploadPath } from "../helpers/api.ts";
import { GC_TEST_ENV, narinfoStatus, seenByServers } from "./helpers.ts";

requireNix();

const MiB = 1024 * 1024;
let server: TestServer;
let token: string;
let netrc: string;
let key: string;

beforeAll(async () => {
  server = await startServer({ env: GC_TEST_ENV });
  token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  key = await createCache(server.url, token, "checked");
  await createCache(server.url, token, "other");
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
});

afterAll(async () => {
  await server?.stop();
});

interface FsckReport {
  objects: number;
  chunks: number;
  verified: number;
  damaged_chunks: number;
  damaged: Record<string, string[]>;
  repaired: boolean;
}

function fsck(...args: string[]): { code: number; report: FsckReport } {
  const r = run(garretCmd("fsck", "--data", server.dataDir, "--json", ...args));
  if (r.code !== 0 && r.code !== 1) throw new Error(`fsck failed (${r.code}): ${r.stderr}`);
  seenByServers();
  return { code: r.code, report: JSON.parse(r.stdout) as FsckReport };
}

function lastChunkOf(path: string): { key: string; offset: number; storedSize: number } {
  const db = openDb(server.dataDir);
  try {
    return db.query(`SELECT p.storage_key AS key, c.pack_offset AS offset, c.stored_size AS storedSize FROM nars n
      JOIN nar_chunks nc ON nc.nar_id = n.id JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id
      WHERE n.nar_hash = ? ORDER BY c.pack_offset DESC LIMIT 1`).get(pathInfo(path).narHash.slice(7)) as
      { key: string; offset: number; storedSize: number };
  } finally {
    db.close();
  }
}

async function missing(cache: string, path: string): Promise<string[]> {
  const res = await fetch(`${server.url}/_api/v1/get-missing-paths`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ cache, store_path_hashes: [storeHashOf(path)] }),
  });
  return ((await res.json()) as { missing_paths: string[] }).missing_paths;
}

test("fsck finds lost and corrupted chunks, --repair hides the paths, a re-push heals them", async () => {
  const lost = buildClosure(uniqueTag(), { bigBytes: 2 * MiB });
  const corrupt = buildClosure(uniqueTag(), { bigBytes: MiB });
  for (const p of [lost.dep, lost.top]) expect((await uploadPath(server.url, token, "checked", p)).status).toBe(200);
  for (const p of [corrupt.dep, corrupt.top]) expect((await uploadPath(server.url, token, "other", p)).status).toBe(200);
  const nars = { lost: narOf(lost.dep), corrupt: narOf(corrupt.dep) };

  const clean = fsck();
  expect(clean.code).toBe(0);
  expect(clean.report.damaged_chunks).toBe(0);
  expect(clean.report.verified).toBe(clean.report.chunks);

  // Behind the server's back: cut the last chunk of one pack, flip bytes inside another.
  const a = lastChunkOf(lost.dep);
  truncateSync(join(server.dataDir, "storage", a.key), a.offset);
  const b = lastChunkOf(corrupt.dep);
  const fd = openSync(join(server.dataDir, "storage", b.key), "r+");
  writeSync(fd, Buffer.alloc(16, 0xff), 0, 16, b.offset + Math.floor(b.storedSize / 2));
  closeSync(fd);
  expect(statSync(join(server.dataDir, "storage", a.key)).size).toBe(a.offset);

  const found = fsck();
  expect(found.code).toBe(1);
  expect(found.report.damaged_chunks).toBe(2);
  expect(found.report.damaged).toEqual({ checked: [lost.dep], other: [corrupt.dep] });
  expect(found.report.repaired).toBe(false);
  expect(await narinfoStatus(server.url, token, "checked", lost.dep)).toBe(200); // report only

  const repaired = fsck("--repair");
  expect(repaired.code).toBe(0);
  expect(repaired.report.repaired).toBe(true);
  for (const [cache, p] of [["checked", lost.dep], ["other", corrupt.dep]] as const) {
    expect(await narinfoStatus(server.url, token, cache, p)).toBe(404);
    expect(await missing(cache, p)).toEqual([storeHashOf(p)]);
  }
  expect(await narinfoStatus(server.url, token, "checked", lost.top)).toBe(200);
  expect(fsck().report.damaged_chunks).toBe(0); // hidden paths are no longer visible damage

  // Re-pushing heals: the NAR is whole again and stock Nix substitutes the closure.
  expect((await uploadPath(server.url, token, "checked", lost.dep)).status).toBe(200);
  expect((await uploadPath(server.url, token, "other", corrupt.dep)).status).toBe(200);
  expect(await narinfoStatus(server.url, token, "checked", lost.dep)).toBe(200);
  expect(await narinfoStatus(server.url, token, "other", corrupt.dep)).toBe(200);
  const after = fsck();
  expect(after.code).toBe(0);
  expect(after.report.objects).toBe(4);
  expect(danglingChunks(server.dataDir)).toEqual([]);
  deleteClosure(lost.top);
  expect(outcome(substitute(`${server.url}/checked`, key, lost.top, netrc))).toBe("ok");
  expect(narOf(lost.dep).equals(nars.lost)).toBe(true);
}, 90000);
