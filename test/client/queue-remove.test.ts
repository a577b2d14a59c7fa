/**
 * The queue and a cache that does not exist (issue 17): the next drain says so in one line naming
 * the cache and alias, keeps the entries marked as held instead of retrying them for ever, and
 * `garret queue --remove ID|PATH...` drops them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { requireNix, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { loginClient, runAsync, runAsyncOk, wideClosure, type Client } from "./helpers.ts";

requireNix();

let server: TestServer;
let client: Client;

beforeAll(async () => {
  server = await startServer();
  client = loginClient(server);
});

afterAll(async () => {
  await server?.stop();
});

type Entry = { id: number; target: string; path: string; attempts: number; held: string | null };
const envWith = () => ({ ...client.env, GARRET_STATE_DIR: tempDir("garret-spool-") });
const list = async (env: Record<string, string>): Promise<Entry[]> =>
  JSON.parse((await runAsyncOk(garretCmd("queue", "--list", "--json"), { env })).stdout);
const configGets = (cache: string) => server.log().split("\n").filter((l) => l.includes(`GET /_api/v1/cache-config/${cache} `)).length;

describe("queue and a cache that does not exist", () => {
  test("the drain names cache and alias once, keeps the entry held, and --remove drops it", async () => {
    const env = envWith();
    const real = `real-${uniqueTag()}`;
    const nope = `nope-${uniqueTag()}`;
    await createCache(server.url, client.token, real);
    const a = wideClosure(uniqueTag(), 1).top;
    const b = wideClosure(uniqueTag(), 1).top;
    await runAsyncOk(garretCmd("queue", `local:${nope}`, a), { env });
    await runAsyncOk(garretCmd("queue", `local:${real}`, b), { env });

    const drain = await runAsync(garretCmd("queue", "--drain"), { env });
    expect(drain.code).toBe(1);
    const [entry] = (await list(env)).filter((e) => e.target === `local:${nope}`);
    const why = `cache "${nope}" does not exist on local (${server.url})`;
    const reported = drain.stdout.split("\n").filter((l) => l.includes(nope));
    expect(reported).toEqual([`✗ ${why}: 1 queued path(s) for local:${nope} kept but not retried; `
      + `create the cache and drain again, or drop them: garret queue --remove ${entry!.id}`]);
    expect(drain.stdout).toContain("Queue drained: 1 queued path(s) pushed, 0 dropped, 1 held");
    expect(drain.stderr).toBe("error: 1 path(s) held in the queue because their cache does not exist; see garret queue --list, drop them with garret queue --remove ID...\n");
    // Asked once, not retried: a 404 will not turn into a cache by waiting.
    await Bun.sleep(100); // the server writes its log once per event-loop turn
    expect(configGets(nope)).toBe(1);
    // The other target's paths went up and left the queue; the held one stays, marked.
    expect(await list(env)).toEqual([expect.objectContaining({ target: `local:${nope}`, path: a, attempts: 1, held: why })]);
    const text = (await runAsyncOk(garretCmd("queue", "--list"), { env })).stdout;
    expect(text).toBe(`${entry!.id} local:${nope} ${a} (held: ${why})\n`);

    // The next drain reports it again (one more question to the server), then stops.
    const again = await runAsync(garretCmd("queue", "--drain"), { env });
    expect(again.code).toBe(1);
    expect(again.stdout.split("\n").filter((l) => l.startsWith("✗ "))).toHaveLength(1);
    await Bun.sleep(100);
    expect(configGets(nope)).toBe(2);

    const removed = await runAsyncOk(garretCmd("queue", "--remove", String(entry!.id)), { env });
    expect(removed.stdout).toBe("Removed 1 entry from the queue.\n");
    expect(await list(env)).toEqual([]);
    const clean = await runAsync(garretCmd("queue", "--drain"), { env });
    expect(clean.code).toBe(0);
  });

  test("--remove takes store paths too, and names what is not queued", async () => {
    const env = envWith();
    const nope = `nope-${uniqueTag()}`;
    const a = wideClosure(uniqueTag(), 1).top;
    const b = wideClosure(uniqueTag(), 1).top;
    await runAsyncOk(garretCmd("queue", `local:${nope}`, a, b), { env });
    await runAsyncOk(garretCmd("queue", `local:other-${nope}`, a), { env });
    const r = await runAsyncOk(garretCmd("queue", "--remove", a), { env });
    expect(r.stdout).toBe("Removed 2 entries from the queue.\n");
    expect((await list(env)).map((e) => e.path)).toEqual([b]);
    const missing = await runAsync(garretCmd("queue", "--remove", "999999", b), { env });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe("Removed 1 entry from the queue.\n");
    expect(missing.stderr).toBe("error: not in the queue: 999999 (garret queue --list shows the ids and paths)\n");
    const none = await runAsync(garretCmd("queue", "--remove"), { env });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("usage: garret queue --remove ID|PATH...");
  });

  test("a running worker gives held entries another try: created later, the cache gets them without a restart", async () => {
    const env = envWith();
    const later = `later-${uniqueTag()}`;
    const a = wideClosure(uniqueTag(), 1).top;
    await runAsyncOk(garretCmd("queue", `local:${later}`, a), { env });
    // --interval 0.05: held entries are retried every 100 intervals, 5 s.
    const worker = Bun.spawn(garretCmd("queue", "--worker", "--interval", "0.05"), { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
    try {
      for (let i = 0; i < 600 && (await list(env))[0]?.held == null; i++) await Bun.sleep(50);
      expect((await list(env))[0]!.held).toContain("does not exist");
      await createCache(server.url, client.token, later);
      // No restart and nothing queued again: the worker's own retry uploads it.
      for (let i = 0; i < 1200 && (await list(env)).length > 0; i++) await Bun.sleep(50);
      expect(await list(env)).toEqual([]);
      const info = await fetch(`${server.url}/${later}/${a.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`,
        { headers: { authorization: `Bearer ${client.token}` } });
      expect(info.status).toBe(200);
    } finally {
      worker.kill();
      await worker.exited;
    }
  });

  test("queuing a held path again releases it", async () => {
    const env = envWith();
    const late = `late-${uniqueTag()}`;
    const a = wideClosure(uniqueTag(), 1).top;
    await runAsyncOk(garretCmd("queue", `local:${late}`, a), { env });
    expect((await runAsync(garretCmd("queue", "--drain"), { env })).code).toBe(1);
    expect((await list(env))[0]!.held).toContain("does not exist");
    await createCache(server.url, client.token, late);
    await runAsyncOk(garretCmd("queue", `local:${late}`, a), { env });
    expect((await list(env))[0]!.held).toBeNull();
    const drain = await runAsyncOk(garretCmd("queue", "--drain"), { env });
    expect(drain.stdout).toContain("Queue drained: 1 queued path(s) pushed, 0 dropped");
    expect(await list(env)).toEqual([]);
  });
});
