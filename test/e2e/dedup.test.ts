/**
 * The deduplication engine's acceptance tests (issue 3): chunks shared across caches, edit
 * locality, concurrent identical uploads, fail-closed downloads and healing, object counts, HEAD
 * and byte ranges.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  buildClosure, buildExpr, deleteClosure, narOf, requireNix, run, SH, substitute, tempDir, uniqueTag,
} from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import {
  danglingChunks, narinfoOf, openDb, pathInfo, storageFiles, storedBytes, uploadPath,
} from "../helpers/api.ts";

requireNix();

const MiB = 1024 * 1024;
let server: TestServer;
let token: string;
let netrc: string;
const keys: Record<string, string> = {};

beforeAll(async () => {
  server = await startServer();
  token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  for (const c of ["d1", "d2", "d3", "heal", "count"]) keys[c] = await createCache(server.url, token, c);
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
});

afterAll(async () => {
  await server?.stop();
});

async function upload(cache: string, path: string): Promise<{ kind: string; frac_deduplicated: number; file_size: number }> {
  const res = await uploadPath(server.url, token, cache, path);
  expect(res.status).toBe(200);
  return (await res.json()) as { kind: string; frac_deduplicated: number; file_size: number };
}

async function uploadClosure(cache: string, top: string): Promise<void> {
  const dep = pathInfo(top).references.filter((r) => r !== top);
  for (const p of [...dep, top]) await upload(cache, p);
}

const chunkCount = (): number => {
  const db = openDb(server.dataDir);
  try {
    return (db.query("SELECT COUNT(*) AS n FROM chunks").get() as { n: number }).n;
  } finally {
    db.close();
  }
};

describe("global deduplication", () => {
  test("the same 5 MiB NAR in two caches is stored once, and Nix substitutes it from each", async () => {
    const { top, dep } = buildClosure(uniqueTag(), { bigBytes: 5 * MiB });
    const nars = { top: narOf(top), dep: narOf(dep) };
    await uploadClosure("d1", top);
    const bytesAfterFirst = storedBytes(server.dataDir);
    const chunksAfterFirst = chunkCount();
    expect(chunksAfterFirst).toBeGreaterThan(40); // ~5 MiB in ~64 KiB chunks

    const again = await upload("d2", dep);
    expect(again.kind).toBe("Deduplicated");
    expect(again.frac_deduplicated).toBe(1);
    await upload("d2", top);
    expect(storedBytes(server.dataDir)).toBe(bytesAfterFirst);
    expect(chunkCount()).toBe(chunksAfterFirst);

    for (const cache of ["d1", "d2"]) {
      deleteClosure(top);
      const r = substitute(`${server.url}/${cache}`, keys[cache]!, top, netrc);
      expect(r.stderr).not.toContain("error");
      expect(r.code).toBe(0);
      expect(narOf(top).equals(nars.top)).toBe(true);
      expect(narOf(dep).equals(nars.dep)).toBe(true);
    }
  });

  test("a path that differs by one edit in a large file reuses > 90% of its chunks", async () => {
    const tag = uniqueTag();
    const base = buildExpr(`let ${SH} in sh "edit-base-${tag}" "/bin/mkdir $out; /usr/bin/head -c ${8 * MiB} /dev/urandom > $out/big"`);
    const edited = buildExpr(`let ${SH} in sh "edit-new-${tag}" ''
      /bin/mkdir $out
      /usr/bin/head -c 4000000 ${base}/big > $out/big
      echo "a small edit in the middle" >> $out/big
      /usr/bin/tail -c +4000001 ${base}/big >> $out/big
    ''`);
    await upload("d1", base);
    const chunksBefore = chunkCount();
    const answer = await upload("d1", edited);
    expect(answer.kind).toBe("Uploaded");
    expect(answer.frac_deduplicated).toBeGreaterThan(0.9);
    expect(chunkCount() - chunksBefore).toBeLessThanOrEqual(4);
  });

  test("10 concurrent identical uploads across 3 caches all succeed and leave one live copy", async () => {
    const path = buildExpr(`let ${SH} in sh "concurrent-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${3 * MiB} /dev/urandom > $out/big"`);
    const caches = ["d1", "d2", "d3"];
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => uploadPath(server.url, token, caches[i % 3]!, path)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    const db = openDb(server.dataDir);
    const hex = pathInfo(path).narHash.slice("sha256:".length);
    const nars = db.query("SELECT id FROM nars WHERE nar_hash = ?").all(hex) as { id: number }[];
    db.close();
    expect(nars.length).toBe(1);
    expect(danglingChunks(server.dataDir)).toEqual([]);
    for (const cache of caches) {
      const info = await narinfoOf(server.url, cache, path, token);
      const res = await fetch(`${server.url}/${cache}/${info.URL}`, { headers: { authorization: `Bearer ${token}` } });
      const body = Bun.zstdDecompressSync(new Uint8Array(await res.arrayBuffer()));
      expect(new Bun.CryptoHasher("sha256").update(body).digest("hex")).toBe(hex);
    }
  });

  test("pushing a 50 MiB NAR creates only a handful of storage objects", async () => {
    const path = buildExpr(`let ${SH} in sh "count-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${50 * MiB} /dev/urandom > $out/big"`);
    const before = storageFiles(server.dataDir).length;
    await upload("count", path);
    const created = storageFiles(server.dataDir).length - before;
    expect(created).toBeGreaterThanOrEqual(1);
    expect(created).toBeLessThanOrEqual(2);
  });
});

describe("serving NARs", () => {
  let url: string;
  let full: Uint8Array;
  const auth = () => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    const path = buildExpr(`let ${SH} in sh "ranges-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${MiB} /dev/urandom > $out/big"`);
    await upload("d3", path);
    const info = await narinfoOf(server.url, "d3", path, token);
    url = `${server.url}/d3/${info.URL}`;
    full = new Uint8Array(await (await fetch(url, { headers: auth() })).arrayBuffer());
    expect(full.length).toBe(Number(info.FileSize));
  });

  test("HEAD answers the size without a body", async () => {
    const res = await fetch(url, { method: "HEAD", headers: auth() });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(full.length));
    expect(res.headers.get("accept-ranges")).toBe("bytes");
  });

  test("byte ranges", async () => {
    const cases: [string, number, number][] = [
      ["bytes=0-99", 0, 99], ["bytes=70000-200000", 70000, 200000], [`bytes=${full.length - 10}-`, full.length - 10, full.length - 1],
      ["bytes=-5", full.length - 5, full.length - 1],
    ];
    for (const [header, start, end] of cases) {
      const res = await fetch(url, { headers: { ...auth(), range: header } });
      expect(res.status).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${start}-${end}/${full.length}`);
      const body = new Uint8Array(await res.arrayBuffer());
      expect(Buffer.from(body).equals(Buffer.from(full.subarray(start, end + 1)))).toBe(true);
    }
    const bad = await fetch(url, { headers: { ...auth(), range: `bytes=${full.length + 5}-` } });
    expect(bad.status).toBe(416);
  });
});

describe("fail closed, then heal", () => {
  test("a pack that breaks after the first bytes were sent aborts the transfer, never a short 200", async () => {
    // The edited path shares most chunks with the base path's pack, so it is streamed from two
    // packs (not sent as one file range), and cutting the base pack fails it midway.
    const tag = uniqueTag();
    const base = buildExpr(`let ${SH} in sh "midbody-base-${tag}" "/bin/mkdir $out; /usr/bin/head -c ${12 * MiB} /dev/urandom > $out/big"`);
    const edited = buildExpr(`let ${SH} in sh "midbody-new-${tag}" ''
      /bin/mkdir $out
      /usr/bin/head -c 100000 ${base}/big > $out/big
      echo edit >> $out/big
      /usr/bin/tail -c +100001 ${base}/big >> $out/big
    ''`);
    await upload("heal", base);
    await upload("heal", edited);
    const info = await narinfoOf(server.url, "heal", edited, token);
    const db = openDb(server.dataDir);
    const [pack] = db.query(`SELECT DISTINCT p.storage_key FROM nars n JOIN nar_chunks nc ON nc.nar_id = n.id
      JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id WHERE n.nar_hash = ?`)
      .all(pathInfo(base).narHash.slice(7)) as { storage_key: string }[];
    db.close();
    const file = join(server.dataDir, "storage", pack!.storage_key);
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const curl = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u", `x:${token}`, `${server.url}/heal/${info.URL}`]);
    expect(curl.stdout).toBe("200");
    expect(curl.code).not.toBe(0); // the transfer is cut short and curl says so

    // Re-uploading heals exactly the chunks that were lost.
    await upload("heal", edited);
    await upload("heal", base);
    expect(danglingChunks(server.dataDir)).toEqual([]);
    const healed = run(["curl", "-sSf", "-o", "/dev/null", "-w", "%{size_download}", "-u", `x:${token}`, `${server.url}/heal/${info.URL}`]);
    expect(healed.code).toBe(0);
    expect(healed.stdout).toBe(info.FileSize!);
  });

  test("a freshly pushed NAR is sent like a static file, with Content-Length", async () => {
    const path = buildExpr(`let ${SH} in sh "static-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${MiB} /dev/urandom > $out/big"`);
    await upload("heal", path);
    const info = await narinfoOf(server.url, "heal", path, token);
    const r = run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-u", `x:${token}`, `${server.url}/heal/${info.URL}`]);
    expect(r.stdout.toLowerCase()).toContain(`content-length: ${info.FileSize}`);
    expect(r.stdout.toLowerCase()).not.toContain("transfer-encoding: chunked");
  });

  test("a NAR whose pack was deleted fails visibly in curl and Nix; re-uploading heals it", async () => {
    const { top, dep } = buildClosure(uniqueTag(), { bigBytes: 2 * MiB });
    const depNar = narOf(dep);
    await uploadClosure("heal", top);
    const info = await narinfoOf(server.url, "heal", dep, token);
    const db = openDb(server.dataDir);
    const packs = db.query(`SELECT DISTINCT p.storage_key FROM nars n JOIN nar_chunks nc ON nc.nar_id = n.id
      JOIN chunks c ON c.id = nc.chunk_id JOIN packs p ON p.id = c.pack_id WHERE n.nar_hash = ?`)
      .all(pathInfo(dep).narHash.slice(7)) as { storage_key: string }[];
    db.close();
    expect(packs.length).toBeGreaterThan(0);
    for (const p of packs) rmSync(join(server.dataDir, "storage", p.storage_key));

    const curl = run(["curl", "-sSf", "-o", "/dev/null", "-u", `x:${token}`, `${server.url}/heal/${info.URL}`]);
    expect(curl.code).not.toBe(0);
    deleteClosure(top);
    const failed = substitute(`${server.url}/heal`, keys.heal!, top, netrc);
    expect(failed.code).not.toBe(0);

    // Re-upload from a copy of the NAR: the local store no longer has the path.
    const res = await fetch(`${server.url}/_api/v1/upload-path`, {
      method: "PUT",
      headers: {
        authorization: `Bearer ${token}`,
        "x-attic-nar-info": JSON.stringify({
          cache: "heal", store_path_hash: dep.split("/").pop()!.slice(0, 32), store_path: dep, references: [],
          nar_hash: `sha256:${new Bun.CryptoHasher("sha256").update(depNar).digest("hex")}`, nar_size: depNar.length,
        }),
      },
      body: depNar,
    });
    expect(res.status).toBe(200);
    // The lost bytes were stored again (the NAR's record was kept): an upload, not a dedup.
    expect(await res.json()).toMatchObject({ kind: "Uploaded", frac_deduplicated: 0 });
    expect(danglingChunks(server.dataDir)).toEqual([]);
    const ok = substitute(`${server.url}/heal`, keys.heal!, top, netrc);
    expect(ok.code).toBe(0);
    expect(narOf(dep).equals(depNar)).toBe(true);
  });
});
