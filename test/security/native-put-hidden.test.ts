/**
 * Threat: a tenant probes another tenant's private cache through Nix's own HTTP store protocol
 * (the PUTs and HEADs of `nix copy --to http://…`). Every request must answer exactly like the
 * same request to a name that holds no cache: status, body and headers, with its token or none.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import zlib from "node:zlib";
import { encodeBase32 } from "../../src/nix/base32.ts";
import { nar } from "../nix/nar-writer.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { storedBytes } from "../helpers/api.ts";

let server: TestServer;
let alice: string;
let mallory: string;

beforeAll(async () => {
  server = await startServer();
  alice = mintToken(server.dataDir, "--pull", "alice-*", "--push", "alice-*", "--create-cache", "alice-*");
  mallory = mintToken(server.dataDir, "--pull", "mal-*", "--push", "mal-*", "--create-cache", "mal-*");
  await createCache(server.url, alice, "alice-hidden");
  await createCache(server.url, mallory, "mal-own");
});

afterAll(async () => {
  await server?.stop();
});

const sha = (b: Uint8Array): Uint8Array => new Bun.CryptoHasher("sha256").update(b).digest() as Uint8Array;

async function answer(cache: string, method: string, path: string, token: string | null, body?: Uint8Array | string): Promise<string> {
  const res = await fetch(`${server.url}/${cache}/${path}`, {
    method, body, headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const headers = [...res.headers].filter(([k]) => k !== "date" && k !== "x-request-id").map(([k, v]) => `${k}: ${v}`).sort();
  return JSON.stringify({ status: res.status, headers, body: await res.text() });
}

test("nix copy's requests to another tenant's private cache answer like those to a missing name", async () => {
  const file = zlib.zstdCompressSync(nar({ type: "regular", contents: `probe ${crypto.randomUUID()}` }));
  const narFile = `nar/${encodeBase32(sha(file))}.nar.zst`;
  const hash = "0".repeat(32);
  const narinfo = `StorePath: /nix/store/${hash}-probe\nURL: ${narFile}\nCompression: zstd\nNarHash: sha256:${encodeBase32(sha(file))}\nNarSize: 1\nReferences: \n`;
  const requests: [string, string, (Uint8Array | string)?][] = [
    ["PUT", narFile, file], ["HEAD", narFile], ["GET", narFile],
    ["PUT", `${hash}.narinfo`, narinfo], ["HEAD", `${hash}.narinfo`], ["GET", `${hash}.narinfo`],
    ["PUT", "nix-cache-info", "StoreDir: /nix/store\n"], ["GET", "nix-cache-info"],
  ];
  for (const token of [mallory, null]) {
    for (const [method, path, body] of requests) {
      const hidden = await answer("alice-hidden", method, path, token, body);
      const missing = await answer("alice-nothing", method, path, token, body);
      expect({ method, path, token: token !== null, answer: hidden }).toEqual({ method, path, token: token !== null, answer: missing });
    }
  }
});

test("a NAR PUT of what only another tenant's private cache holds does the work of a new one", async () => {
  const contents = Buffer.alloc(2 * 1024 * 1024);
  for (let o = 0; o < contents.length; o += 65536) crypto.getRandomValues(contents.subarray(o, o + 65536));
  const file = zlib.zstdCompressSync(nar({ type: "regular", contents }));
  const narFile = `nar/${encodeBase32(sha(file))}.nar.zst`;
  const put = (cache: string, token: string) =>
    fetch(`${server.url}/${cache}/${narFile}`, { method: "PUT", body: file, headers: { authorization: `Bearer ${token}` } });
  expect((await put("alice-hidden", alice)).status).toBe(204);
  // Published in Alice's cache: a staged NAR is in no cache yet, so nobody would reuse its chunks.
  const bytes = nar({ type: "regular", contents });
  // The narinfo PUT commits once the NAR's packs are durable, so storage is measured after it.
  const publish = (cache: string, token: string) => {
    const hash = encodeBase32(sha(Buffer.from(crypto.randomUUID()))).slice(0, 32);
    const narinfo = [`StorePath: /nix/store/${hash}-secret`, `URL: ${narFile}`, "Compression: zstd",
      `NarHash: sha256:${encodeBase32(sha(bytes))}`, `NarSize: ${bytes.length}`, "References: ", ""].join("\n");
    return fetch(`${server.url}/${cache}/${hash}.narinfo`, { method: "PUT", body: narinfo, headers: { authorization: `Bearer ${token}` } });
  };
  expect((await publish("alice-hidden", alice)).status).toBe(204);
  const before = storedBytes(server.dataDir);
  expect((await put("mal-own", mallory)).status).toBe(204);
  expect((await publish("mal-own", mallory)).status).toBe(204);
  // Written again, as a NAR nobody holds would be (the chunks are random: they do not compress).
  expect(storedBytes(server.dataDir) - before).toBeGreaterThanOrEqual(contents.length);
});
