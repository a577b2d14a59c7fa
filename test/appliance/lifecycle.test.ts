/** Issue 7: the first run hands out a root token once; SIGTERM during an upload is clean. */
import { afterAll, describe, expect, test } from "bun:test";
import { openDb } from "../helpers/db.ts";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildExpr, narStream, requireNix, run, SH, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { Pty } from "../setup/pty.ts";
import { inPty } from "../client/helpers.ts";
import { narinfoOf, pathInfo, storeHashOf, uploadPath } from "../helpers/api.ts";

requireNix();

const MiB = 1024 * 1024;
/** How the printed next steps call garret: the built binary by name, a checkout through npx. */
const SELF = process.env.GARRET_BIN ? "garret" : "npx garret";
const servers: TestServer[] = [];

afterAll(async () => {
  for (const s of servers) if (s.proc.exitCode === null) await s.stop();
});

describe("first run", () => {
  test("hands out a working root token once, with next steps; a log never holds it", async () => {
    const server = await startServer();
    servers.push(server);
    // stderr is a file here, as under a service manager: the token goes to a private file instead.
    const file = join(server.dataDir, "root-token");
    expect(server.log()).toContain(file);
    expect(server.log()).not.toContain("eyJ");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The same alias as setup's output and the README; runnable as printed from a checkout.
    expect(server.log()).toContain(`    ${SELF} login garret ${server.url}\n`);
    await createCache(server.url, readFileSync(file, "utf8").trim(), "first-cache");
    await server.stop();

    const again = await startServer({ dataDir: server.dataDir });
    servers.push(again);
    expect(again.log()).not.toContain("root-token");
    await again.stop();
  });

  test("on a terminal the token is shown, and no file is written", async () => {
    const dataDir = join(tempDir("garret-tty-"), "data");
    const pty = new Pty(garretCmd("serve", "--listen", "127.0.0.1:0", "--data", dataDir), { cwd: tempDir() });
    try {
      await pty.expect("listening on", 30000);
      const screen = pty.screen.replace(/\r/g, "");
      // The token alone on its line, nothing before or after it: it copies cleanly.
      const m = /\n(eyJ[\w-]+\.[\w-]+\.[\w-]+)\n/.exec(screen);
      expect(m).not.toBeNull();
      expect(existsSync(join(dataDir, "root-token"))).toBe(false);
      const url = /listening on (http:\/\/\S+)/.exec(screen)![1]!;
      const steps = screen.split("\n").filter((l) => l.startsWith(`    ${SELF} `)).map((l) => l.trim());
      expect(steps).toEqual([
        `${SELF} login garret ${url}`, `${SELF} cache create garret:main`, `${SELF} push garret:main ./result`, `${SELF} use garret:main`,
      ]);
      // The steps work as printed: login asks for the token, then the cache is made.
      const env = { XDG_CONFIG_HOME: tempDir("garret-client-") };
      const args = (step: string) => garretCmd(...step.slice(SELF.length + 1).split(" "));
      const login = await inPty(args(steps[0]!), env, [{ waitFor: "Token for", send: `${m![1]}\r` }]);
      expect(login.code).toBe(0);
      const create = run(args(steps[1]!), { env });
      expect(create.code).toBe(0);
      expect(create.stdout).toContain("Created cache main");
    } finally {
      pty.proc.kill("SIGTERM");
      await pty.proc.exited;
    }
  });
});

/** A body that trickles, so the upload is surely in flight when the signal lands. */
function trickle(source: ReadableStream<Uint8Array>, bytesPerTick: number): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let pending: Uint8Array | null = null;
  return new ReadableStream({
    async pull(controller) {
      if (!pending || pending.length === 0) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        pending = value;
      }
      const piece = pending.subarray(0, bytesPerTick);
      pending = pending.subarray(piece.length);
      await Bun.sleep(10);
      controller.enqueue(piece);
    },
  });
}

describe("SIGTERM", () => {
  for (const [name, rate, expectPresent] of [
    ["an upload that finishes within the grace period is kept", 4 * MiB, true],
    ["an upload too slow to finish is cut and leaves nothing", 16 * 1024, false],
  ] as const) {
    test(name, async () => {
      const server = await startServer();
      servers.push(server);
      const token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
      await createCache(server.url, token, "t");
      const path = buildExpr(`let ${SH} in sh "sigterm-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${24 * MiB} /dev/urandom > $out/big"`);
      const body = trickle(narStream(path), rate);
      const upload = uploadPath(server.url, token, "t", path, body).then((r) => r.status, () => 0);
      await Bun.sleep(500);
      const signalled = Date.now();
      server.proc.kill("SIGTERM");
      await server.proc.exited;
      expect(Date.now() - signalled).toBeLessThan(10_000);
      expect(server.proc.exitCode).toBe(0);
      const status = await upload;

      const db = openDb(server.dataDir);
      expect((db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
      db.close();
      const restarted = await startServer({ dataDir: server.dataDir });
      servers.push(restarted);
      const narinfo = await fetch(`${restarted.url}/t/${storeHashOf(path)}.narinfo`, { headers: { authorization: `Bearer ${token}` } });
      if (expectPresent) {
        expect(status).toBe(200);
        expect(narinfo.status).toBe(200);
        const info = await narinfoOf(restarted.url, "t", path, token);
        const nar = await fetch(`${restarted.url}/t/${info.URL}`, { headers: { authorization: `Bearer ${token}` } });
        const plain = Bun.zstdDecompressSync(new Uint8Array(await nar.arrayBuffer()));
        expect(`sha256:${new Bun.CryptoHasher("sha256").update(plain).digest("hex")}`).toBe(pathInfo(path).narHash);
      } else {
        expect(status).not.toBe(200);
        expect(narinfo.status).toBe(404);
      }
      await restarted.stop();
    });
  }
});
