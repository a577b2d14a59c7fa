/**
 * Small uploads that finish together share a pack (one fsync) and a metadata transaction (one
 * savepoint each): many concurrent small uploads, some of them refused, must each land whole and
 * read back byte for byte, in fewer packs than uploads, with nothing left pending or dangling.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { BUILD_OPTS, narOf, requireNix, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { danglingChunks, narinfoOf, openDb, pathInfo, uploadPath } from "../helpers/api.ts";

requireNix();

const COUNT = 24;
let server: TestServer;
let token: string;
let paths: string[];

beforeAll(async () => {
  server = await startServer();
  token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  await createCache(server.url, token, "small");
  const dir = tempDir("garret-expr-");
  const tag = uniqueTag();
  writeFileSync(join(dir, "default.nix"), `builtins.genList (i: builtins.toFile "garret-shared-${tag}-\${toString i}"
    (builtins.concatStringsSep "" (builtins.genList (j: "path \${toString i} line \${toString j} ${tag}\\n") (200 + i * 50)))) ${COUNT}`);
  paths = runOk(["nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode", ...BUILD_OPTS, join(dir, "default.nix")])
    .trim().replace(/^\[|\]$/g, "").split(",").map((s) => JSON.parse(s) as string);
});

afterAll(async () => {
  await server?.stop();
});

test(`${COUNT} concurrent small uploads with refused ones among them: all good ones land whole, in shared packs`, async () => {
  // Every third upload also has a twin that sends another path's bytes: refused for its size.
  const good = paths.map((p) => uploadPath(server.url, token, "small", p));
  const bad = paths.filter((_, i) => i % 3 === 0).map((p, i) => {
    const other = paths[(i * 3 + 1) % COUNT]!;
    return uploadPath(server.url, token, "small", p, new Response(narOf(other)).body!);
  });
  const [goodAnswers, badAnswers] = await Promise.all([Promise.all(good), Promise.all(bad)]);
  expect(goodAnswers.map((r) => r.status)).toEqual(Array(COUNT).fill(200));
  for (const r of badAnswers) {
    expect(r.status).toBe(400);
    expect(["SizeMismatch", "HashMismatch"]).toContain(((await r.json()) as { error: string }).error);
  }

  // Each NAR reads back exactly.
  for (const p of paths) {
    const info = await narinfoOf(server.url, "small", p, token);
    const res = await fetch(`${server.url}/small/${info.URL}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    const nar = info.Compression === "zstd" ? Buffer.from(Bun.zstdDecompressSync(body)) : body;
    expect(nar.equals(narOf(p))).toBe(true);
  }

  // Fewer packs than uploads, every one sealed, none pending; no chunk points nowhere.
  const db = openDb(server.dataDir);
  const hexes = paths.map((p) => pathInfo(p).narHash.slice("sha256:".length));
  const packs = db.query(`SELECT DISTINCT p.id, p.state FROM nars n JOIN nar_chunks nc ON nc.nar_id = n.id
    JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id
    WHERE n.nar_hash IN (${hexes.map(() => "?").join(",")})`).all(...hexes) as { id: number; state: string }[];
  const pending = db.query("SELECT COUNT(*) AS n FROM packs WHERE state = 'pending'").get() as { n: number };
  db.close();
  expect(packs.length).toBeLessThan(COUNT);
  expect(packs.every((p) => p.state === "valid")).toBe(true);
  expect(pending.n).toBe(0);
  expect(danglingChunks(server.dataDir)).toEqual([]);
});
