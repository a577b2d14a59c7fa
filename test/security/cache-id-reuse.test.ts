/**
 * Threat (issue 12, critical): a tenant plants a signed path in another tenant's new cache. Tenant
 * A holds an upload into its own cache open, destroys that cache, and waits for tenant B to create
 * one; when ids were reused, A's upload committed under the id it read at the start, into B's
 * cache, signed with B's key. Stock Nix trusting only B's key must never install A's path.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { openDb } from "../helpers/db.ts";
import { buildExpr, deleteFromStore, narOf, requireNix, run, SH, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { pathInfo, storeHashOf } from "../helpers/api.ts";
import { SqliteMetaStore } from "../../src/db/sqlite.ts";
import { MIGRATIONS } from "../../src/db/migrations.ts";

requireNix();

let server: TestServer;
let tokenA: string;
let tokenB: string;

beforeAll(async () => {
  server = await startServer();
  tokenA = mintToken(server.dataDir, "--pull", "a-*", "--push", "a-*", "--create-cache", "a-*", "--destroy-cache", "a-*");
  tokenB = mintToken(server.dataDir, "--pull", "b*", "--push", "b*", "--create-cache", "b*");
});

afterAll(async () => {
  await server?.stop();
});

function leasesInFlight(): number {
  const db = openDb(server.dataDir);
  try {
    return (db.query("SELECT COUNT(*) AS n FROM upload_leases").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await Bun.sleep(10);
}

/** A body whose first half goes at once and whose rest waits until `release` is called. */
function heldBody(bytes: Uint8Array): { body: ReadableStream<Uint8Array>; release(): void; firstHalfSent: Promise<void> } {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let sent!: () => void;
  const firstHalfSent = new Promise<void>((r) => (sent = r));
  const half = Math.floor(bytes.length / 2);
  let step = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (step === 0) {
        controller.enqueue(bytes.subarray(0, half));
        step = 1;
        sent();
      } else {
        await released;
        controller.enqueue(bytes.subarray(half));
        controller.close();
      }
    },
  });
  return { body, release, firstHalfSent };
}

test("an upload into a destroyed cache never lands in the next cache created", async () => {
  const tag = uniqueTag();
  const trojan = buildExpr(`let ${SH} in sh "hello-2.12-${tag}" "echo trojan ${tag} > $out; /usr/bin/head -c 300000 /dev/urandom >> $out"`);
  const nar = narOf(trojan);
  const info = pathInfo(trojan);

  await createCache(server.url, tokenA, `a-race-${tag}`);
  const held = heldBody(nar);
  const upload = fetch(`${server.url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: {
      authorization: `Bearer ${tokenA}`,
      "x-attic-nar-info": JSON.stringify({
        cache: `a-race-${tag}`, store_path_hash: storeHashOf(trojan), store_path: trojan, references: info.references,
        system: null, deriver: null, sigs: [], ca: null, nar_hash: info.narHash, nar_size: info.narSize,
      }),
    },
    body: held.body,
  });
  await held.firstHalfSent;
  // Wait until the server has authorised the upload and holds its lease (it is reading the body).
  await until(() => leasesInFlight() > 0);

  const destroyed = await fetch(`${server.url}/_api/v1/cache-config/a-race-${tag}`, {
    method: "DELETE", headers: { authorization: `Bearer ${tokenA}` },
  });
  expect(destroyed.status).toBe(200);
  const bKey = await createCache(server.url, tokenB, `bnew${tag}`);

  held.release();
  const answer = await upload;
  expect(answer.status).toBe(404);
  expect(((await answer.json()) as { error: string }).error).toBe("NoSuchCache");

  const narinfo = await fetch(`${server.url}/bnew${tag}/${storeHashOf(trojan)}.narinfo`, { headers: { authorization: `Bearer ${tokenB}` } });
  expect(narinfo.status).toBe(404);

  // Stock Nix, trusting only bnew's key, must not install A's path from bnew.
  const netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${tokenB}\n`);
  deleteFromStore(trojan);
  const r = substitute(`${server.url}/bnew${tag}`, bKey, trojan, netrc);
  expect(r.code).not.toBe(0);
  expect(run(["nix-store", "--check-validity", trojan]).code).not.toBe(0);
});

test("ids of destroyed caches are never handed out again", async () => {
  const tag = uniqueTag();
  const ids: number[] = [];
  const db = () => openDb(server.dataDir);
  for (const n of [1, 2]) {
    await createCache(server.url, tokenA, `a-id${n}-${tag}`);
    const conn = db();
    ids.push((conn.query("SELECT id FROM caches WHERE name = ?").get(`a-id${n}-${tag}`) as { id: number }).id);
    conn.close();
    await fetch(`${server.url}/_api/v1/cache-config/a-id${n}-${tag}`, { method: "DELETE", headers: { authorization: `Bearer ${tokenA}` } });
  }
  expect(ids[1]).toBeGreaterThan(ids[0]!);
});

test("the migration keeps every cache, object and pin, and ids are not reused after it", async () => {
  // A database as the previous release left it (migrations 1-3), with a cache holding a pinned path.
  const path = join(tempDir("garret-mig-"), "garret.db");
  const old = new Database(path, { create: true, strict: true });
  old.exec("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (3)");
  for (const sql of MIGRATIONS.slice(0, 3)) old.exec(sql);
  old.exec(`INSERT INTO caches (id, name, signing_key, created_at) VALUES (1, 'keep', 'k', 1), (2, 'last', 'k', 2);
    INSERT INTO nars (id, nar_hash, nar_size, num_chunks, file_size, compression, created_at) VALUES (1, 'h', 1, 0, 0, 'none', 1);
    INSERT INTO objects (cache_id, store_path_hash, store_path, nar_id, refs, created_at, last_accessed_at)
      VALUES (2, 'p', '/nix/store/p-x', 1, '[]', 1, 1);
    INSERT INTO pins (cache_id, name, store_path_hash, store_path, created_at) VALUES (2, 'pin', 'p', '/nix/store/p-x', 1);`);
  old.close();

  const meta = new SqliteMetaStore(path);
  try {
    expect((await meta.listCaches()).map((c) => [c.id, c.name])).toEqual([[1, "keep"], [2, "last"]]);
    expect(await meta.listPins(2)).toHaveLength(1);
    expect(await meta.missingPaths(2, ["p"])).toEqual([]);
    expect(await meta.deleteCache({ id: 2, name: "last", createdAt: 999 })).toBe(false); // not the one authorised
    expect(await meta.deleteCache({ id: 2, name: "last", createdAt: 2 })).toBe(true);
    const next = await meta.createCache({
      name: "next", isPublic: false, storeDir: "/nix/store", priority: 41, upstreamCacheKeyNames: [], signingKey: "k", retentionPeriod: null,
    });
    expect(next.id).toBe(3);
  } finally {
    meta.close();
  }
});
