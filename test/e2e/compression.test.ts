/**
 * Every compression setting round-trips through stock Nix substitution (issue 3, acceptance 6),
 * including a NAR whose chunks were stored under different settings.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { buildClosure, buildExpr, deleteClosure, narOf, outcome, requireNix, SH, substitute, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { narinfoOf, pathInfo, uploadPath } from "../helpers/api.ts";

requireNix();

const MiB = 1024 * 1024;
let server: TestServer | null = null;

afterEach(async () => {
  await server?.stop();
  server = null;
});

async function pushClosure(s: TestServer, token: string, cache: string, top: string): Promise<void> {
  const deps = pathInfo(top).references.filter((r) => r !== top);
  for (const p of [...deps, top]) expect((await uploadPath(s.url, token, cache, p)).status).toBe(200);
}

describe("compression settings", () => {
  const expected: Record<string, { compression: string; ext: string }> = {
    zstd: { compression: "zstd", ext: ".nar.zst" },
    none: { compression: "none", ext: ".nar" },
    // Brotli streams do not concatenate, so chunked brotli NARs are served decompressed.
    br: { compression: "none", ext: ".nar" },
  };
  for (const [setting, want] of Object.entries(expected)) {
    test(`${setting}: stored, served and substituted by stock Nix`, async () => {
      server = await startServer({ env: { GARRET_COMPRESSION: setting } });
      const token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
      const key = await createCache(server.url, token, "c", { is_public: true });
      const { top, dep } = buildClosure(uniqueTag(), { bigBytes: MiB });
      const before = { top: narOf(top), dep: narOf(dep) };
      await pushClosure(server, token, "c", top);
      const info = await narinfoOf(server.url, "c", dep);
      expect(info.Compression).toBe(want.compression);
      expect(info.URL).toEndWith(want.ext);
      deleteClosure(top);
      const r = substitute(`${server.url}/c`, key, top);
      expect(r.code).toBe(0);
      expect(narOf(top).equals(before.top)).toBe(true);
      expect(narOf(dep).equals(before.dep)).toBe(true);
    });
  }

  test("a NAR whose chunks were stored under two settings is served plain and substitutes", async () => {
    const dataDir = tempDir("garret-data-");
    const tag = uniqueTag();
    const base = buildExpr(`let ${SH} in sh "mixed-base-${tag}" "/bin/mkdir $out; /usr/bin/head -c ${2 * MiB} /dev/urandom > $out/big"`);
    const edited = buildExpr(`let ${SH} in sh "mixed-new-${tag}" ''
      /bin/mkdir $out
      /usr/bin/head -c 1000000 ${base}/big > $out/big
      echo edit >> $out/big
      /usr/bin/tail -c +1000001 ${base}/big >> $out/big
    ''`);
    server = await startServer({ dataDir, env: { GARRET_COMPRESSION: "zstd" } });
    const token = mintToken(dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
    const key = await createCache(server.url, token, "m", { is_public: true });
    expect((await uploadPath(server.url, token, "m", base)).status).toBe(200);
    await server.stop();

    server = await startServer({ dataDir, env: { GARRET_COMPRESSION: "none" } });
    expect((await uploadPath(server.url, token, "m", edited)).status).toBe(200);
    const info = await narinfoOf(server.url, "m", edited);
    expect(info.Compression).toBe("none");
    expect(Number(info.FileSize)).toBe(Number(info.NarSize));
    const nar = narOf(edited);
    deleteClosure(edited);
    expect(outcome(substitute(`${server.url}/m`, key, edited))).toBe("ok");
    expect(narOf(edited).equals(nar)).toBe(true);
  });
});
