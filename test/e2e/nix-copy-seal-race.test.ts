/**
 * Issue 15: a NAR PUT answers before its packs are synced, and the seal that follows marks its
 * staged record durable. A HEAD or narinfo PUT that read the record just before that mark, and
 * looked for the seal just after it ended, took the NAR for one another replica had dropped: HEAD
 * answered 404 right after a 204 PUT (Nix would send the NAR again; a hand-made client saw it
 * missing). A loaded PostgreSQL CI run caught it; before the fix this test saw 2 of 400 such HEADs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import zlib from "node:zlib";
import { encodeBase32 } from "../../src/nix/base32.ts";
import { nar } from "../nix/nar-writer.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  await createCache(server.url, admin, "seal-race");
});

afterAll(async () => {
  await server?.stop();
});

const sha = (b: Uint8Array): Uint8Array => new Bun.CryptoHasher("sha256").update(b).digest() as Uint8Array;

test("a NAR HEAD just after its 204 PUT answers 200 however its seal and the lookup interleave", async () => {
  const auth = { authorization: `Bearer ${admin}` };
  const missing: string[] = [];
  const putThenHead = async (i: number): Promise<void> => {
    const file = zlib.zstdCompressSync(nar({ type: "regular", contents: `seal race ${i} ${crypto.randomUUID()}` }));
    const url = `${server.url}/seal-race/nar/${encodeBase32(sha(file))}.nar.zst`;
    expect((await fetch(url, { method: "PUT", headers: auth, body: file })).status).toBe(204);
    const head = await fetch(url, { method: "HEAD", headers: auth });
    if (head.status !== 200) missing.push(`${i}: ${head.status}`);
  };
  // Four at a time: their seals' commits land while the other requests' lookups are in flight.
  for (let round = 0; round < 100; round++) await Promise.all([0, 1, 2, 3].map((j) => putThenHead(round * 4 + j)));
  expect(missing).toEqual([]);
});
