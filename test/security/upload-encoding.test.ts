/**
 * Threats (issue 12, Low): a corrupt Content-Encoding body on upload-path must be the client's
 * 400 with a stable code and one log line, not a 500 with a stack trace; a decompression bomb
 * (a small body that expands far past the nar_size it claims) is cut off at that size, so the
 * server decodes about nar_size bytes and spends little CPU on it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import zlib from "node:zlib";
import { requireNix, tempDir } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { decodeContent, DecodeError } from "../../src/store/compression.ts";

requireNix();

let server: TestServer;
let admin: string;
let nar: Buffer;
let narHash: string;
const HASH = "2c0bp3fg7cgn7y0k8ixhrijhlzxqv4z7";
const PATH = `/nix/store/${HASH}-encoded`;

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*");
  await createCache(server.url, admin, "enc", { is_public: true });
  const file = join(tempDir(), "payload");
  writeFileSync(file, "encoded body\n".repeat(100));
  nar = Buffer.from(Bun.spawnSync(["nix-store", "--dump", file]).stdout);
  narHash = new Bun.CryptoHasher("sha256").update(nar).digest("hex");
});

afterAll(async () => {
  await server?.stop();
});

const upload = (body: Uint8Array, encoding: string, narSize = nar.length, hash = narHash): Promise<Response> =>
  fetch(`${server.url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: {
      authorization: `Bearer ${admin}`,
      "content-encoding": encoding,
      "x-attic-nar-info": JSON.stringify({
        cache: "enc", store_path_hash: HASH, store_path: PATH, references: [], system: null, deriver: null,
        sigs: [], ca: null, nar_hash: `sha256:${hash}`, nar_size: narSize,
      }),
    },
    body,
  });

const ENCODERS: Record<string, (b: Buffer) => Buffer> = {
  zstd: (b) => zlib.zstdCompressSync(b),
  br: (b) => zlib.brotliCompressSync(b),
  gzip: (b) => zlib.gzipSync(b),
  deflate: (b) => zlib.deflateSync(b),
};

/** Corruptions of a valid stream: garbage, flipped bytes in the middle, a truncated tail. */
function corruptions(good: Buffer): Buffer[] {
  const flipped = Buffer.from(good);
  for (let i = Math.floor(flipped.length / 3); i < flipped.length - 4; i += 7) flipped[i]! ^= 0x5a;
  return [Buffer.from("this is not compressed at all, not even a little bit"), flipped, good.subarray(0, good.length >> 1)];
}

/** CPU seconds (user + system) the server process has used so far. */
function serverCpu(): number {
  const fields = readFileSync(`/proc/${server.proc.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

describe("corrupt encoded bodies", () => {
  for (const [encoding, encode] of Object.entries(ENCODERS)) {
    test(`${encoding}: 400 InvalidEncoding, one log line, no stack, nothing stored`, async () => {
      const good = encode(nar);
      for (const [i, body] of corruptions(good).entries()) {
        const before = server.log().length;
        const res = await upload(body, encoding);
        const answer = (await res.json()) as { error: string; message: string };
        // A zstd stream cut at a frame boundary ends cleanly: the NAR is then short, which is its own 400.
        const codes = i === 2 ? ["InvalidEncoding", "SizeMismatch"] : ["InvalidEncoding"];
        expect([res.status, codes.includes(answer.error)]).toEqual([400, true]);
        await Bun.sleep(50); // the log line is written after the answer
        const added = server.log().slice(before);
        expect(added).not.toContain("internal error");
        expect(added).not.toMatch(/^\s+at /m);
        expect(added.split("\n").filter((l) => l.includes("InvalidEncoding")).length).toBeLessThanOrEqual(1);
      }
      expect((await fetch(`${server.url}/enc/${HASH}.narinfo`)).status).toBe(404);
    });
  }
  test("the same bodies encoded correctly are taken", async () => {
    const res = await upload(ENCODERS.zstd!(nar), "zstd");
    expect(res.status).toBe(200);
    expect((await fetch(`${server.url}/enc/${HASH}.narinfo`)).status).toBe(200);
  });
});

/** A valid NAR header for one regular file of `size` zeros, then the zeros (not the trailer). */
function bombNarHead(size: number): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(b.length));
    return Buffer.concat([len, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
  };
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(size));
  return Buffer.concat([str("nix-archive-1"), str("("), str("type"), str("regular"), str("contents"), len]);
}


describe("decompression bomb", () => {
  let bomb: Buffer;
  beforeAll(async () => {
    const size = 2 * 1024 ** 3;
    const enc = zlib.createZstdCompress();
    const parts: Buffer[] = [];
    enc.on("data", (b: Buffer) => parts.push(b));
    const done = new Promise((r) => enc.on("end", r));
    enc.write(bombNarHead(size));
    const zeros = Buffer.alloc(1 << 20);
    for (let i = 0; i < size / zeros.length; i++) enc.write(zeros);
    enc.end();
    await done;
    bomb = Buffer.concat(parts);
    expect(bomb.length).toBeLessThan(256 * 1024);
  });

  test("the decoder yields no more than the limit it is given, then fails with DecodeError", async () => {
    async function* once(): AsyncGenerator<Uint8Array> {
      yield bomb;
    }
    const limit = 1024 * 1024;
    let decoded = 0;
    let error: unknown = null;
    try {
      for await (const b of decodeContent(once(), "zstd", limit)) decoded += b.length;
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(DecodeError);
    expect((error as DecodeError).reason).toBe("limit");
    expect(decoded).toBeLessThanOrEqual(limit);
  });

  for (const claimed of [1024 * 1024, 64 * 1024 * 1024]) {
    test(`a 2 GiB bomb claiming ${claimed >> 20} MiB is cut off there: 400 SizeMismatch, little server CPU`, async () => {
      const cpu0 = serverCpu();
      const res = await upload(bomb, "zstd", claimed, "0".repeat(64));
      const cpu = serverCpu() - cpu0;
      expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([400, "SizeMismatch"]);
      // Decoding and hashing all 2 GiB costs several CPU seconds; stopping at the claimed size
      // costs what that many bytes cost (well under a second for 64 MiB).
      expect(cpu).toBeLessThan(1.5);
      expect((await fetch(`${server.url}/enc/${HASH.replace("2", "3")}.narinfo`)).status).toBe(404);
    });
  }
});
