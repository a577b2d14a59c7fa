/**
 * Small NARs are served from memory once read (GARRET_NAR_MEMORY_MIB, default 64; 0 for none):
 * the bytes are the same either way, ranges included, and a bad setting stops the server with one
 * readable line.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildClosure, narOf, requireNix, run, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { narinfoOf, uploadPath } from "../helpers/api.ts";

requireNix();

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

for (const mib of ["64", "0"]) {
  describe(`GARRET_NAR_MEMORY_MIB=${mib}`, () => {
    let server: TestServer;
    let url: string;
    let stored: Uint8Array;
    beforeAll(async () => {
      server = await startServer({ env: { GARRET_NAR_MEMORY_MIB: mib } });
      servers.push(server);
      const token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
      await createCache(server.url, token, "m", { is_public: true });
      const { dep } = buildClosure(`mem-${mib}-${uniqueTag()}`, { bigBytes: 100_000 });
      expect((await uploadPath(server.url, token, "m", dep)).status).toBe(200);
      const info = await narinfoOf(server.url, "m", dep);
      url = `${server.url}/m/${info.URL}`;
      const first = await fetch(url);
      expect(first.status).toBe(200);
      stored = new Uint8Array(await first.arrayBuffer());
      expect(stored.length).toBe(Number(info.FileSize));
      // What was stored decodes to the path's NAR.
      const plain = info.Compression === "zstd" ? Bun.zstdDecompressSync(stored) : stored;
      expect(Buffer.from(plain).equals(narOf(dep))).toBe(true);
    });

    test("the second fetch and byte ranges give the same bytes as the first", async () => {
      const again = new Uint8Array(await (await fetch(url)).arrayBuffer());
      expect(Buffer.from(again).equals(Buffer.from(stored))).toBe(true);
      const end = Math.min(stored.length - 1, 99);
      const part = await fetch(url, { headers: { range: `bytes=10-${end}` } });
      expect(part.status).toBe(206);
      expect(part.headers.get("content-range")).toBe(`bytes 10-${end}/${stored.length}`);
      expect(Buffer.from(await part.arrayBuffer()).equals(Buffer.from(stored.subarray(10, end + 1)))).toBe(true);
    });
  });
}

test("a bad GARRET_NAR_MEMORY_MIB stops the server with one line", () => {
  const r = run(garretCmd("serve", "--listen", "127.0.0.1:0", "--data", tempDir("garret-nar-memory-")), {
    env: { ...process.env, GARRET_NAR_MEMORY_MIB: "lots" },
  });
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe('error: GARRET_NAR_MEMORY_MIB must be a number of MiB (0 for none), not "lots"');
});
