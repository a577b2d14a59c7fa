/**
 * Issue 15, acceptance 6 (part): what else Nix's HTTP binary cache store writes and reads, with
 * stock Nix: build logs (`nix store copy-log --to`, `nix log --store`), NAR listings uploaded by
 * `?write-nar-listing=true` (`nix store ls --store`), debug info links (`?index-debug-info=true`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { uploadPath } from "../helpers/api.ts";
import { buildExpr, narOf, NIX_OPTS, requireNix, run, runOk, SH, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

requireNix();

let server: TestServer;
let admin: string;
let netrc: string;
let pullNetrc: string;

beforeAll(async () => {
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*");
  netrc = join(tempDir(), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 login x password ${mintToken(server.dataDir, "--pull", "fl-*", "--push", "fl-*")}\n`);
  pullNetrc = join(tempDir(), "netrc");
  writeFileSync(pullNetrc, `machine 127.0.0.1 login x password ${mintToken(server.dataDir, "--pull", "fl-*")}\n`);
  await createCache(server.url, admin, "fl-a");
});

afterAll(async () => {
  await server?.stop();
});

const nix = (n: string, ...args: string[]) => run(["nix", ...NIX_OPTS, "--option", "netrc-file", n, ...args]);
const hashOf = (p: string): string => p.slice(11, 43);

describe("side files with stock Nix", () => {
  test("nix store copy-log --to, then nix log --store", async () => {
    const tag = uniqueTag();
    const out = buildExpr(`let ${SH} in sh "fl-log-${tag}" "echo building-${tag}-says-hello; echo ${tag} > $out"`);
    expect(nix(netrc, "copy", "--to", `${server.url}/fl-a?compression=zstd`, out).code).toBe(0);
    const copied = nix(netrc, "store", "copy-log", "--to", `${server.url}/fl-a`, out);
    expect([copied.code, copied.stderr]).toEqual([0, ""]);
    // A pull-only token may read it but not write one.
    const log = nix(pullNetrc, "log", "--store", `${server.url}/fl-a`, out);
    expect(log.code).toBe(0);
    expect(log.stdout).toContain(`building-${tag}-says-hello`);
    expect(nix(pullNetrc, "store", "copy-log", "--to", `${server.url}/fl-a`, out).code).not.toBe(0);
    // Private: without a token the log looks missing.
    const drv = runOk(["nix-store", "-q", "--deriver", out]).trim().slice(11);
    expect((await fetch(`${server.url}/fl-a/log/${drv}`)).status).toBe(404);
    expect((await fetch(`${server.url}/fl-a/log/${drv}`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(200);
  });

  test("?write-nar-listing=true uploads a .ls that is served back; nix store ls --store lists the path", async () => {
    const tag = uniqueTag();
    const out = buildExpr(`let ${SH} in sh "fl-ls-${tag}" "/bin/mkdir -p $out/sub; echo ${tag} > $out/sub/file; /bin/ln -s sub/file $out/link"`);
    expect(nix(netrc, "copy", "--to", `${server.url}/fl-a?compression=zstd&write-nar-listing=true`, out).code).toBe(0);
    const res = await fetch(`${server.url}/fl-a/${hashOf(out)}.ls`, { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(200);
    const listing = (await res.json()) as { version: number; root: { type: string; entries: Record<string, { type: string }> } };
    expect(listing.version).toBe(1);
    expect(listing.root.entries.sub!.type).toBe("directory");
    expect(listing.root.entries.link!.type).toBe("symlink");
    const ls = nix(netrc, "store", "ls", "--store", `${server.url}/fl-a`, "-R", out);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain("sub/file");
    expect((await fetch(`${server.url}/fl-a/${hashOf(out)}.ls`)).status).toBe(404);
  });

  test("?index-debug-info=true writes debuginfo/<build-id> links that are served back", async () => {
    const tag = uniqueTag();
    const id = "ab" + "0123456789abcdef0123456789abcdef012345".slice(0, 38);
    const out = buildExpr(`let ${SH} in sh "fl-debug-${tag}" "/bin/mkdir -p $out/lib/debug/.build-id/${id.slice(0, 2)}; echo ${tag} > $out/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug"`);
    const r = nix(netrc, "copy", "--to", `${server.url}/fl-a?compression=zstd&index-debug-info=true`, out);
    if (r.code !== 0) console.error(r.stderr);
    expect(r.code).toBe(0);
    // Nix 2.8 writes debuginfo/<build-id>.debug; both spellings read the same link.
    expect((await fetch(`${server.url}/fl-a/debuginfo/${id}.debug`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(200);
    const res = await fetch(`${server.url}/fl-a/debuginfo/${id}`, { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(200);
    const link = (await res.json()) as { archive: string; member: string };
    expect(link.member).toBe(`lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`);
    expect(link.archive).toMatch(/^\.\.\/nar\/[0-9a-z]{52}\.nar\.zst$/);
  });

  test("a path pushed through upload-path gets a generated .ls, which nix store ls --store reads", async () => {
    const tag = uniqueTag();
    const out = buildExpr(`let ${SH} in sh "fl-gen-${tag}" "/bin/mkdir -p $out/bin $out/share; echo ${tag} > $out/share/data; echo '#!/bin/sh' > $out/bin/run; /bin/chmod +x $out/bin/run; /bin/ln -s ../share/data $out/bin/link"`);
    const res = await uploadPath(server.url, admin, "fl-a", out);
    expect(res.status).toBe(200);
    const ls = await fetch(`${server.url}/fl-a/${hashOf(out)}.ls`, { headers: { authorization: `Bearer ${admin}` } });
    expect(ls.status).toBe(200);
    const listing = (await ls.json()) as { version: number; root: { entries: Record<string, { type: string; entries: Record<string, Record<string, unknown>> }> } };
    const nar = narOf(out);
    const run_ = listing.root.entries.bin!.entries.run!;
    expect([listing.version, run_.type, run_.executable, run_.size]).toEqual([1, "regular", true, 10]);
    // narOffset points at the file's contents inside the NAR.
    expect(nar.subarray(run_.narOffset as number, (run_.narOffset as number) + 10).toString()).toBe("#!/bin/sh\n");
    expect(listing.root.entries.bin!.entries.link).toEqual({ type: "symlink", target: "../share/data" });
    const r = nix(netrc, "store", "ls", "--store", `${server.url}/fl-a`, "-R", out);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("share/data");
    expect((await fetch(`${server.url}/fl-a/${"0".repeat(32)}.ls`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(404);
  });

  test("a .ls that is not JSON and a log name that is not a derivation are refused", async () => {
    const put = (path: string, body: string) =>
      fetch(`${server.url}/fl-a/${path}`, { method: "PUT", headers: { authorization: `Bearer ${admin}` }, body });
    expect((await put(`${"0".repeat(32)}.ls`, "not json")).status).toBe(400);
    expect((await put("log/../../etc", "x")).status).toBeGreaterThanOrEqual(400);
    expect((await put(`log/${"0".repeat(32)}-x`, "x")).status).toBe(400);
    expect((await put("debuginfo/zz", "{}")).status).toBe(400);
  });
});
