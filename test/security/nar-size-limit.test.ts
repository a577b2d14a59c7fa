/**
 * Threat: a pusher fills the disk, or burns the server's CPU, with one enormous NAR: a real one,
 * or a decompression bomb that claims its huge size honestly. `[upload] max-nar-size` bounds both
 * routes in: Attic's upload-path is refused before its body is read, a native PUT's decoding stops
 * at the limit; either answers 413 NarTooLarge and keeps nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import zlib from "node:zlib";
import { encodeBase32 } from "../../src/nix/base32.ts";
import { buildExpr, narOf, requireNix, SH, uniqueTag } from "../helpers/nix.ts";
import { storageFiles, storeHashOf, uploadPath } from "../helpers/api.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

requireNix();

let server: TestServer;
let token: string;

beforeAll(async () => {
  server = await startServer({ env: { GARRET_UPLOAD_MAX_NAR_SIZE: "256KiB" } });
  token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  await createCache(server.url, token, "limited");
});

afterAll(async () => {
  await server?.stop();
});

const sha = (b: Uint8Array): Uint8Array => new Bun.CryptoHasher("sha256").update(b).digest() as Uint8Array;
const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });
const pathOf = (bytes: number): string =>
  buildExpr(`let ${SH} in sh "limit-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${bytes} /dev/urandom > $out/data"`);

async function expectRefused(res: Response): Promise<void> {
  expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([413, "NarTooLarge"]);
}

/** A native PUT of `file` under the name Nix gives it. */
const putNar = (file: Uint8Array): Promise<Response> =>
  fetch(`${server.url}/limited/nar/${encodeBase32(sha(file))}.nar.zst`, { method: "PUT", headers: auth(), body: file });

describe("a NAR past upload.max-nar-size", () => {
  test("upload-path: refused before its body is read, nothing stored", async () => {
    const path = pathOf(300_000);
    const before = storageFiles(server.dataDir).length;
    await expectRefused(await uploadPath(server.url, token, "limited", path));
    expect(storageFiles(server.dataDir).length).toBe(before);
    const info = await fetch(`${server.url}/limited/${storeHashOf(path)}.narinfo`, { headers: auth() });
    expect(info.status).toBe(404);
  });

  test("native PUT: a real NAR and a bomb (40 KiB that decodes to 64 MiB) stop at the limit, nothing staged", async () => {
    const before = storageFiles(server.dataDir).length;
    const real = zlib.zstdCompressSync(narOf(pathOf(300_000)));
    const bomb = zlib.zstdCompressSync(new Uint8Array(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(64 * 1024);
    for (const file of [real, bomb]) {
      await expectRefused(await putNar(file));
      const head = await fetch(`${server.url}/limited/nar/${encodeBase32(sha(file))}.nar.zst`, { method: "HEAD", headers: auth() });
      expect(head.status).toBe(404);
    }
    expect(storageFiles(server.dataDir).length).toBe(before);
  });

  test("a NAR under the limit is taken, both ways", async () => {
    const path = pathOf(100_000);
    expect((await uploadPath(server.url, token, "limited", path)).status).toBe(200);
    expect((await putNar(zlib.zstdCompressSync(narOf(pathOf(100_000))))).status).toBe(204);
  });
});
