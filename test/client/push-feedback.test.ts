/**
 * What push tells the user (issue 17): a server that is down is named while the early calls retry
 * (not seconds of silence), and on a terminal every path's ✓ line shows, the last one too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { requireNix, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { stripAnsi } from "../setup/pty.ts";
import { inPty, loginClient, runAsync, wideClosure, type Client } from "./helpers.ts";

requireNix();

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startServer();
  client = loginClient(server);
});

afterAll(async () => {
  if (server?.proc.exitCode === null) await server.stop();
});

describe("push feedback", () => {
  test("on a terminal the ✓ line of every path is shown, the last one included", async () => {
    const cache = `tty-${uniqueTag()}`;
    await createCache(server.url, client.token, cache);
    const { top, closure } = wideClosure(uniqueTag(), 2);
    const r = await inPty(garretCmd("push", `local:${cache}`, "-j", "1", top), client.env);
    expect(r.code).toBe(0);
    const screen = stripAnsi(r.out);
    expect(screen).toContain(`Done: ${closure.length} uploaded`);
    for (const p of closure) expect(screen).toContain(`✓ ${p} (`);
    // The top path goes last (everything else is in its closure): the line that used to be lost.
    expect(screen.indexOf(`✓ ${top} (`)).toBeLessThan(screen.indexOf("Done:"));
  });

  test("a server that is down is named on every retry, then the push fails", async () => {
    // Logged in while it was up; now it is gone.
    const down = await startServer();
    const downClient = loginClient(down, "gone");
    const cache = `down-${uniqueTag()}`;
    await createCache(down.url, downClient.token, cache);
    await down.stop();
    const { top } = wideClosure(uniqueTag(), 1);
    const r = await runAsync(garretCmd("push", `gone:${cache}`, "--retries", "3", top), { env: downClient.env });
    expect(r.code).toBe(1);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("↻ "));
    expect(lines).toHaveLength(3);
    lines.forEach((l, i) => {
      expect(l).toMatch(new RegExp(`^↻ server ${down.url.replace(/[.]/g, "\\.")} unreachable \\(connection refused\\); retry ${i + 1}/3 in [\\d.]+ m?s$`));
    });
  });

  test("on a terminal too, the retry lines show before any bar is drawn", async () => {
    const down = await startServer();
    const downClient = loginClient(down, "gone3");
    await down.stop();
    const { top } = wideClosure(uniqueTag(), 1);
    const r = await inPty(garretCmd("push", "gone3:c", "--retries", "2", top), downClient.env);
    expect(r.code).toBe(1);
    const screen = stripAnsi(r.out);
    expect(screen).toContain(`↻ server ${down.url} unreachable (connection refused); retry 1/2 in `);
    expect(screen).toContain(`↻ server ${down.url} unreachable (connection refused); retry 2/2 in `);
  });

  test("--json keeps stdout to the summary; the retry lines go to stderr", async () => {
    const down = await startServer();
    const downClient = loginClient(down, "gone2");
    await down.stop();
    const { top } = wideClosure(uniqueTag(), 1);
    const r = await runAsync(garretCmd("push", "gone2:c", "--json", "--retries", "1", top), { env: downClient.env });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`↻ server ${down.url} unreachable (connection refused); retry 1/1 in `);
  });
});
