/**
 * Crash safety (issue 3, acceptance 5): a server killed with SIGKILL in the middle of a 200 MiB
 * upload restarts cleanly, the path is absent, nothing in the index points at missing bytes, the
 * leftovers are recorded for the collector, and re-pushing succeeds.
 */
import { afterAll, expect, test } from "bun:test";
import { buildExpr, narStream, requireNix, SH, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { danglingChunks, openDb, storeHashOf, uploadPath } from "../helpers/api.ts";

requireNix();

const MiB = 1024 * 1024;
let server: TestServer | null = null;

afterAll(async () => {
  await server?.stop();
});

function killAfter(source: ReadableStream<Uint8Array>, bytes: number, kill: () => void): ReadableStream<Uint8Array> {
  let seen = 0;
  let killed = false;
  return source.pipeThrough(new TransformStream({
    transform(chunk, controller) {
      seen += chunk.length;
      if (seen >= bytes && !killed) {
        killed = true;
        kill();
      }
      controller.enqueue(chunk);
    },
  }));
}

test("SIGKILL mid-upload leaves a consistent store, and a re-push succeeds", async () => {
  const path = buildExpr(`let ${SH} in sh "crash-${uniqueTag()}" "/bin/mkdir $out; /usr/bin/head -c ${200 * MiB} /dev/urandom > $out/big"`);
  server = await startServer();
  const { dataDir } = server;
  const token = mintToken(dataDir, "--pull", "*", "--push", "*", "--create-cache", "*");
  await createCache(server.url, token, "crash");

  const victim = server;
  const dump = narStream(path);
  const body = killAfter(dump, 80 * MiB, () => victim.proc.kill("SIGKILL"));
  const outcome = await uploadPath(server.url, token, "crash", path, body).then((r) => r.status, (e: Error) => e.message);
  expect(outcome).not.toBe(200);
  await victim.proc.exited;
  expect(victim.proc.signalCode).toBe("SIGKILL");

  server = await startServer({ dataDir });
  const db = openDb(dataDir);
  expect((db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
  expect((db.query("SELECT COUNT(*) AS n FROM objects").get() as { n: number }).n).toBe(0);
  expect((db.query("SELECT COUNT(*) AS n FROM nars").get() as { n: number }).n).toBe(0);
  // What the crash left is on record for the collector.
  expect((db.query("SELECT COUNT(*) AS n FROM packs WHERE state = 'pending'").get() as { n: number }).n).toBeGreaterThan(0);
  db.close();
  expect(danglingChunks(dataDir)).toEqual([]);

  const missing = await fetch(`${server.url}/_api/v1/get-missing-paths`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ cache: "crash", store_path_hashes: [storeHashOf(path)] }),
  });
  expect(((await missing.json()) as { missing_paths: string[] }).missing_paths).toEqual([storeHashOf(path)]);
  expect((await fetch(`${server.url}/crash/${storeHashOf(path)}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);

  const again = await uploadPath(server.url, token, "crash", path);
  expect(again.status).toBe(200);
  expect(((await again.json()) as { kind: string }).kind).toBe("Uploaded");
  expect(danglingChunks(dataDir)).toEqual([]);
  expect((await fetch(`${server.url}/crash/${storeHashOf(path)}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
});
