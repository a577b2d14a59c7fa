/**
 * Issue 15, acceptance 6 (part): `nix store sign --store http://host/<cache> -k KEY PATH` with
 * stock Nix 2.8, which reads the path's narinfo, adds its signature and PUTs the narinfo back. A
 * narinfo PUT for a path the cache holds is taken when it only adds signatures; anything else
 * changing an existing path is refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildExpr, deleteClosure, narOf, NIX_OPTS, requireNix, run, runOk, SH, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

requireNix();

let server: TestServer;
let admin: string;
let cacheKey: string;
let pushNetrc: string;
let pullNetrc: string;
let secretKeyFile: string;
let publicKey: string;

function netrcFor(token: string): string {
  const file = join(tempDir(), "netrc");
  writeFileSync(file, `machine 127.0.0.1 login nix password ${token}\n`);
  return file;
}

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*");
  pushNetrc = netrcFor(mintToken(server.dataDir, "--pull", "sg-*", "--push", "sg-*"));
  pullNetrc = netrcFor(mintToken(server.dataDir, "--pull", "sg-*"));
  cacheKey = await createCache(server.url, admin, "sg-a");
  const dir = tempDir();
  secretKeyFile = join(dir, "sk");
  runOk(["nix-store", "--generate-binary-cache-key", "sign-test-1", secretKeyFile, join(dir, "pk")]);
  publicKey = readFileSync(join(dir, "pk"), "utf8").trim();
});

afterAll(async () => {
  await server?.stop();
});

const nix = (netrc: string, ...args: string[]) => run(["nix", ...NIX_OPTS, "--option", "netrc-file", netrc, ...args]);
const hashOf = (p: string): string => p.slice("/nix/store/".length, "/nix/store/".length + 32);
const url = (): string => `${server.url}/sg-a`;

/** top → leaf, pushed with stock nix copy. */
function pushedChain(): { top: string; leaf: string } {
  const tag = uniqueTag();
  const top = buildExpr(`
    let ${SH}
      leaf = sh "sg-leaf-${tag}" "echo leaf ${tag} > $out";
    in sh "sg-top-${tag}" "echo ${tag} \${leaf} > $out"
  `);
  const leaf = runOk(["nix-store", "-qR", top]).trim().split("\n").find((p) => p !== top)!;
  const copied = nix(pushNetrc, "copy", "--to", `${url()}?compression=zstd`, top);
  expect([copied.code, copied.stderr.includes("error")]).toEqual([0, false]);
  return { top, leaf };
}

const narinfo = async (p: string): Promise<string> =>
  (await fetch(`${url()}/${hashOf(p)}.narinfo`, { headers: { authorization: `Bearer ${admin}` } })).text();

const putNarinfo = (p: string, text: string): Promise<Response> =>
  fetch(`${url()}/${hashOf(p)}.narinfo`, { method: "PUT", headers: { authorization: `Bearer ${admin}` }, body: text });

describe("nix store sign --store http://…/<cache>", () => {
  test("adds the signature: nix path-info --sigs shows it, and a store trusting only that key substitutes", async () => {
    const { top, leaf } = pushedChain();
    const signed = nix(pushNetrc, "store", "sign", "--store", url(), "-k", secretKeyFile, "-r", top);
    expect([signed.code, signed.stderr.trim()]).toEqual([0, "added 2 signatures"]);

    const info = nix(pushNetrc, "path-info", "--sigs", "--store", url(), "-r", top);
    expect(info.code).toBe(0);
    for (const p of [top, leaf]) {
      const line = info.stdout.split("\n").find((l) => l.startsWith(p))!;
      expect(line).toContain("sign-test-1:");
      expect(line).toContain(`${cacheKey.split(":")[0]}:`); // the cache's own signature stays
    }

    // Signing again adds nothing (Nix sees its signature is there and sends no PUT).
    const puts = (server.log().match(/PUT \/sg-a\/[0-9a-z]{32}\.narinfo 204/g) ?? []).length;
    expect(nix(pushNetrc, "store", "sign", "--store", url(), "-k", secretKeyFile, top).code).toBe(0);
    expect((server.log().match(/PUT \/sg-a\/[0-9a-z]{32}\.narinfo 204/g) ?? []).length).toBe(puts);
    expect((await narinfo(top)).match(/^Sig: sign-test-1:/gm)?.length).toBe(1);

    // Substituted in a fresh store with only the added key trusted: that signature is valid.
    const nar = narOf(top);
    deleteClosure(top);
    runOk(["nix-store", ...NIX_OPTS, "--option", "substituters", url(), "--option", "trusted-public-keys", publicKey,
      "--option", "netrc-file", pushNetrc, "-r", top]);
    expect(narOf(top).equals(nar)).toBe(true);
    const verify = nix(pushNetrc, "store", "verify", "--store", url(), "--trusted-public-keys", publicKey, "-r", top);
    expect([verify.code, verify.stderr.includes("untrusted")]).toEqual([0, false]);
  });

  test("needs push: with a pull-only token nix store sign fails and adds nothing", async () => {
    const { top } = pushedChain();
    const before = await narinfo(top);
    expect(nix(pullNetrc, "store", "sign", "--store", url(), "-k", secretKeyFile, top).code).not.toBe(0);
    expect(await narinfo(top)).toBe(before);
  });

  test("a narinfo PUT changing anything but Sig of a stored path is refused, the path unchanged", async () => {
    const { top } = pushedChain();
    const served = await narinfo(top);
    const field = (k: string): string => new RegExp(`^${k}: (.*)$`, "m").exec(served)![1]!;
    const changes: [string, string][] = [
      ["NarSize", `NarSize: ${Number(field("NarSize")) + 8}`],
      ["References", "References: "],
      ["Deriver", `Deriver: ${"1".repeat(32)}-other.drv`],
      ["URL", `URL: nar/${"0".repeat(52)}.nar.zst`],
    ];
    for (const [key, line] of changes) {
      const res = await putNarinfo(top, served.replace(new RegExp(`^${key}: .*$`, "m"), line));
      expect([key, res.status, ((await res.json()) as { error: string }).error]).toEqual([key, 409, "PathExists"]);
    }
    // A Sig under the cache's own key name that is not the cache's signature, or a malformed one.
    const forged = `${cacheKey.split(":")[0]}:${Buffer.alloc(64, 7).toString("base64")}`;
    for (const sig of [forged, "sign-test-1:AAAA"]) {
      const res = await putNarinfo(top, `${served.trimEnd()}\nSig: ${sig}\n`);
      expect([res.status, ((await res.json()) as { error: string }).error]).toEqual([400, "InvalidSignature"]);
    }
    expect(await narinfo(top)).toBe(served);
  });
});
