/**
 * Issue 15: stock `nix copy --to http://host/<cache>` pushes through Nix's own HTTP binary cache
 * store; garret verifies each NAR and narinfo and publishes the path signed with the cache's key.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import zlib from "node:zlib";
import { encodeBase32 } from "../../src/nix/base32.ts";
import {
  buildExpr, deleteClosure, narOf, NIX_OPTS, requireNix, run, runOk, SH, tempDir, uniqueTag,
} from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";

requireNix();

let server: TestServer;
let admin: string;
const netrcs: Record<string, string> = {};
const keys: Record<string, string> = {};

function netrcFor(token: string): string {
  const file = join(tempDir(), "netrc");
  writeFileSync(file, `machine 127.0.0.1 login nix password ${token}\n`);
  return file;
}

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*");
  netrcs.push = netrcFor(mintToken(server.dataDir, "--pull", "cp-*", "--push", "cp-*"));
  netrcs.pull = netrcFor(mintToken(server.dataDir, "--pull", "cp-*"));
  netrcs.other = netrcFor(mintToken(server.dataDir, "--pull", "other-*", "--push", "other-*"));
  for (const c of ["cp-xz", "cp-zstd", "cp-none", "cp-bzip2", "cp-br", "cp-deny", "cp-bad", "other-x"]) keys[c] = await createCache(server.url, admin, c);
});

afterAll(async () => {
  await server?.stop();
});

/** A closure of three paths: top → mid → leaf, each with unique content. */
function buildChain(tag: string): string {
  return buildExpr(`
    let ${SH}
      leaf = sh "cp-leaf-${tag}" "/bin/mkdir $out; echo leaf ${tag} > $out/data";
      mid = sh "cp-mid-${tag}" "/bin/mkdir $out; echo \${leaf} > $out/ref";
    in sh "cp-top-${tag}" "echo ${tag} \${mid} > $out"
  `);
}

const closureOf = (top: string): string[] => runOk(["nix-store", "-qR", top]).trim().split("\n").filter(Boolean);

function nixCopy(url: string, netrc: string | null, top: string) {
  return run(["nix", ...NIX_OPTS, ...(netrc ? ["--option", "netrc-file", netrc] : []), "copy", "--to", url, top]);
}

const hashOf = (p: string): string => p.slice("/nix/store/".length, "/nix/store/".length + 32);

describe("nix copy --to http://…/<cache>", () => {
  // xz is what Nix writes when no compression is asked for.
  for (const compression of ["xz", "zstd", "none", "bzip2", "br"]) {
    test(`${compression === "xz" ? "default (xz)" : `?compression=${compression}`}: copied, substituted with only the cache's key, verified`, async () => {
      const cache = `cp-${compression}`;
      const top = buildChain(uniqueTag());
      const closure = closureOf(top);
      expect(closure.length).toBe(3);
      const nars = Object.fromEntries(closure.map((p) => [p, narOf(p)]));
      const r = nixCopy(compression === "xz" ? `${server.url}/${cache}` : `${server.url}/${cache}?compression=${compression}`, netrcs.push!, top);
      if (r.code !== 0) console.error(r.stderr);
      expect(r.code).toBe(0);
      // Through Nix's own store: NAR and narinfo PUTs, no Attic API.
      const ext = { xz: ".nar.xz", zstd: ".nar.zst", none: ".nar", bzip2: ".nar.bz2", br: ".nar.br" }[compression];
      expect(server.log().match(new RegExp(`PUT /${cache}/nar/[0-9a-z]{52}\\${ext} 204`, "g"))?.length).toBe(3);
      expect(server.log().match(new RegExp(`PUT /${cache}/[0-9a-z]{32}\\.narinfo 204`, "g"))?.length).toBe(3);
      // Served signed by the cache's key, and the client's signatures (none here) are not trusted blindly.
      const info = await (await fetch(`${server.url}/${cache}/${hashOf(top)}.narinfo`, { headers: { authorization: `Bearer ${admin}` } })).text();
      expect(info).toContain(`Sig: ${keys[cache]!.split(":")[0]}:`);
      // FileHash and FileSize describe exactly the bytes served at URL.
      const field = (k: string): string => new RegExp(`^${k}: (.*)$`, "m").exec(info)![1]!;
      const served = new Uint8Array(await (await fetch(`${server.url}/${cache}/${field("URL")}`, { headers: { authorization: `Bearer ${admin}` } })).arrayBuffer());
      expect(field("FileHash")).toBe(`sha256:${encodeBase32(new Bun.CryptoHasher("sha256").update(served).digest() as Uint8Array)}`);
      expect(Number(field("FileSize"))).toBe(served.length);

      deleteClosure(top);
      runOk(["nix-store", ...NIX_OPTS, "--option", "substituters", `${server.url}/${cache}`,
        "--option", "trusted-public-keys", keys[cache]!, "--option", "netrc-file", netrcs.push!, "-r", top]);
      for (const p of closure) expect(narOf(p).equals(nars[p]!)).toBe(true);
      const verify = run(["nix", ...NIX_OPTS, "--option", "netrc-file", netrcs.push!, "store", "verify",
        "--store", `${server.url}/${cache}`, "--trusted-public-keys", keys[cache]!, "-r", top]);
      expect([verify.code, verify.stderr.includes("untrusted")]).toEqual([0, false]);
    });
  }

  test("a plain NAR the cache holds already is not sent again: HEAD nar/<NarHash>.nar answers 200, the narinfo naming it publishes the path", async () => {
    const tag = uniqueTag();
    // Two paths with the same contents under different names: the same NAR.
    const [a, b] = ["a", "b"].map((n) => buildExpr(`let ${SH} in sh "cp-dup-${n}-${tag}" "echo same ${tag} > $out"`));
    expect(narOf(a!).equals(narOf(b!))).toBe(true);
    const cacheKey = await createCache(server.url, admin, "cp-dup");
    await createCache(server.url, admin, "cp-dup-other");
    expect(nixCopy(`${server.url}/cp-dup?compression=none`, netrcs.push!, a!).code).toBe(0);
    const narName = `${encodeBase32(new Bun.CryptoHasher("sha256").update(narOf(a!)).digest() as Uint8Array)}.nar`;
    // Another cache does not see it: there the NAR is simply absent.
    expect((await fetch(`${server.url}/cp-dup-other/nar/${narName}`, { method: "HEAD", headers: { authorization: `Bearer ${admin}` } })).status).toBe(404);
    const before = server.log().length;
    const r = nixCopy(`${server.url}/cp-dup?compression=none`, netrcs.push!, b!);
    expect(r.code).toBe(0);
    const log = server.log().slice(before);
    expect(log).toContain(`HEAD /cp-dup/nar/${narName} 200`);
    expect(log).not.toContain("PUT /cp-dup/nar/");
    expect(log).toMatch(new RegExp(`PUT /cp-dup/${hashOf(b!)}\\.narinfo 204`));
    // A narinfo naming it in the other cache is refused.
    const info = await (await fetch(`${server.url}/cp-dup/${hashOf(b!)}.narinfo`, { headers: { authorization: `Bearer ${admin}` } })).text();
    const other = await fetch(`${server.url}/cp-dup-other/${hashOf(b!)}.narinfo`, {
      method: "PUT", headers: { authorization: `Bearer ${admin}` },
      body: info.replace(/^URL: .*$/m, `URL: nar/${narName}`).replace(/^Compression: .*$/m, "Compression: none").replace(/^File(Hash|Size): .*\n/gm, ""),
    });
    expect(other.status).toBe(404);
    // b substitutes from the cache, signed by its key.
    const nar = narOf(b!);
    runOk(["nix-store", "--delete", b!]);
    runOk(["nix-store", ...NIX_OPTS, "--option", "substituters", `${server.url}/cp-dup`,
      "--option", "trusted-public-keys", cacheKey, "--option", "netrc-file", netrcs.push!, "-r", b!]);
    expect(narOf(b!).equals(nar)).toBe(true);
  });

  test("without a token, with a pull-only token, or a token for another cache: nix copy fails, nothing stored or staged", async () => {
    const top = buildChain(uniqueTag());
    for (const netrc of [null, netrcs.pull!, netrcs.other!]) {
      const before = server.log().length;
      const r = nixCopy(`${server.url}/cp-deny?compression=zstd`, netrc, top);
      expect(r.code).not.toBe(0);
      const added = server.log().slice(before);
      expect(added).not.toMatch(/PUT \/cp-deny\/\S+ 2\d\d/);
    }
    for (const p of closureOf(top)) {
      const res = await fetch(`${server.url}/cp-deny/${hashOf(p)}.narinfo`, { headers: { authorization: `Bearer ${admin}` } });
      expect(res.status).toBe(404);
    }
  });
});

describe("hand-crafted PUTs are refused and leave the path absent", () => {
  const put = (path: string, body: Uint8Array | string, token: string = admin): Promise<Response> =>
    fetch(`${server.url}/cp-bad/${path}`, { method: "PUT", headers: { authorization: `Bearer ${token}` }, body });
  const sha = (b: Uint8Array): Uint8Array => new Bun.CryptoHasher("sha256").update(b).digest() as Uint8Array;

  let top: string;
  let nar: Buffer;
  let file: Buffer;
  let fileName: string;
  let good: string;

  beforeAll(async () => {
    const tag = uniqueTag();
    top = buildExpr(`let ${SH} in sh "cp-single-${tag}" "echo single ${tag} > $out"`);
    nar = narOf(top);
    file = zlib.zstdCompressSync(nar);
    fileName = `${encodeBase32(sha(file))}.nar.zst`;
    const narHash = `sha256:${encodeBase32(sha(nar))}`;
    good = [`StorePath: ${top}`, `URL: nar/${fileName}`, "Compression: zstd", `FileHash: sha256:${fileName.slice(0, 52)}`,
      `FileSize: ${file.length}`, `NarHash: ${narHash}`, `NarSize: ${nar.length}`, "References: ", ""].join("\n");
  });

  const expectError = async (res: Response, status: number, error: string): Promise<void> => {
    expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([status, error]);
  };
  const absent = async (): Promise<void> => {
    expect((await fetch(`${server.url}/cp-bad/${hashOf(top)}.narinfo`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(404);
  };

  test("a narinfo for a NAR never sent", async () => {
    await expectError(await put(`${hashOf(top)}.narinfo`, good), 404, "NoSuchObject");
    await absent();
  });
  test("a NAR body that does not hash to the FileHash its name claims", async () => {
    await expectError(await put(`nar/${encodeBase32(sha(Buffer.from("x")))}.nar.zst`, file), 400, "HashMismatch");
  });
  test("an unsupported compression", async () => {
    await expectError(await put(`nar/${fileName.slice(0, 52)}.nar.lz4`, file), 400, "InvalidNarInfo");
  });
  test("a body that is not a NAR", async () => {
    const junk = zlib.zstdCompressSync(Buffer.from("not a nar"));
    await expectError(await put(`nar/${encodeBase32(sha(junk))}.nar.zst`, junk), 400, "InvalidNar");
  });
  test("mismatched NarHash, NarSize, StorePath, FileHash; a missing reference; a malformed line", async () => {
    expect((await put(`nar/${fileName}`, file)).status).toBe(204);
    expect((await fetch(`${server.url}/cp-bad/nar/${fileName}`, { method: "HEAD", headers: { authorization: `Bearer ${admin}` } })).status).toBe(200);
    const other = `sha256:${encodeBase32(sha(Buffer.from("other")))}`;
    const cases: [string, number, string][] = [
      [good.replace(/NarHash: .*/, `NarHash: ${other}`), 400, "HashMismatch"],
      [good.replace(/NarSize: .*/, `NarSize: ${nar.length + 1}`), 400, "SizeMismatch"],
      [good.replace(/FileHash: .*/, `FileHash: ${other}`), 400, "HashMismatch"],
      [good.replace("References: ", `References: ${"0".repeat(32)}-missing`), 400, "InvalidNarInfo"],
      [good.replace("Compression: zstd", "Compression zstd"), 400, "InvalidNarInfo"],
    ];
    for (const [text, status, error] of cases) {
      await expectError(await put(`${hashOf(top)}.narinfo`, text), status, error);
      await absent();
    }
    const otherHash = "1".repeat(32);
    await expectError(await put(`${otherHash}.narinfo`, good), 400, "InvalidStorePath");
    // A pull-only token may not publish it either.
    await absent();
    // The good one goes through.
    expect((await put(`${hashOf(top)}.narinfo`, good)).status).toBe(204);
    expect((await fetch(`${server.url}/cp-bad/${hashOf(top)}.narinfo`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(200);
  });
  test("nix-cache-info PUTs are accepted and ignored", async () => {
    const before = await (await fetch(`${server.url}/cp-bad/nix-cache-info`, { headers: { authorization: `Bearer ${admin}` } })).text();
    expect((await put("nix-cache-info", "StoreDir: /elsewhere\nPriority: 1\n")).status).toBe(204);
    expect(await (await fetch(`${server.url}/cp-bad/nix-cache-info`, { headers: { authorization: `Bearer ${admin}` } })).text()).toBe(before);
  });
});
