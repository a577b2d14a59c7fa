/**
 * S3 benchmark: ingest and download of one NAR with the S3 backend (a real s3rver process on
 * loopback) next to local disk, in the same run, and the number of S3 requests per GiB pushed
 * (counted by a small proxy between garret and s3rver). Goal: under 50 requests per GiB.
 *
 *   bun scripts/bench/s3.ts [--quick]      (--quick: 64 MiB instead of 256 MiB)
 *
 * s3rver stores objects as plain files and is slower than a real object store; the request count
 * is the figure that carries over to AWS S3 or R2, where each request costs money.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  MiB, GiB, createCache, fmtMiB, fmtSec, main, mintToken, mixedDataScript, nixBuild, note, parseFlags, pathInfo,
  printTable, ratio, REPO, BUN, requireNix, section, SH_PRELUDE, storePathHash, tempDir, uploadPath, writeSummary,
  type PathInfo, type SummaryRow,
} from "./common.ts";

const BUCKET = "garret-bench";
const GOAL_REQUESTS_PER_GIB = 50;

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

async function waitFor(url: string): Promise<void> {
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      await fetch(url);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not come up`);
      await Bun.sleep(50);
    }
  }
}

/** s3rver plus a counting proxy in front of it. */
async function startS3(): Promise<{ endpoint: string; counts: Map<string, number>; stop(): Promise<void> }> {
  const port = await freePort();
  const proc = Bun.spawn(["node", join(REPO, "node_modules/s3rver/bin/s3rver.js"), "-d", tempDir("garret-bench-s3-"),
    "-a", "127.0.0.1", "-p", String(port), "--silent", "--configure-bucket", BUCKET], { stdout: "ignore", stderr: "ignore" });
  await waitFor(`http://127.0.0.1:${port}/`);
  const counts = new Map<string, number>();
  const proxy = Bun.serve({
    hostname: "127.0.0.1", port: 0, idleTimeout: 255, maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    async fetch(req) {
      const url = new URL(req.url);
      const kind = `${req.method}${url.searchParams.has("uploadId") ? " part" : url.searchParams.has("uploads") ? " create-multipart" : ""}`;
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
      const headers = new Headers(req.headers);
      const res = await fetch(`http://127.0.0.1:${port}${url.pathname}${url.search}`, {
        method: req.method, headers, body: req.body, redirect: "manual",
      });
      return new Response(res.body, { status: res.status, headers: res.headers });
    },
  });
  return {
    endpoint: `http://127.0.0.1:${proxy.port}`, counts,
    async stop() {
      proxy.stop(true);
      proc.kill();
      await proc.exited;
    },
  };
}

async function startServer(env: Record<string, string>): Promise<{ url: string; dataDir: string; stop(): Promise<void> }> {
  const dataDir = tempDir("garret-bench-data-");
  const logPath = join(tempDir("garret-bench-log-"), "server.log");
  const proc = Bun.spawn([BUN, join(REPO, "src/main.ts"), "serve", "--listen", "127.0.0.1:0", "--data", dataDir], {
    stdout: Bun.file(logPath), stderr: Bun.file(logPath), env: { ...process.env, ...env },
  });
  const deadline = Date.now() + 20000;
  for (;;) {
    const log = existsSync(logPath) ? readFileSync(logPath, "utf8") : "";
    const m = /listening on (http:\/\/[^\s]+)/.exec(log);
    if (m) return { url: m[1]!, dataDir, async stop() { proc.kill("SIGTERM"); await proc.exited; } };
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`garret did not start:\n${log}`);
    await Bun.sleep(20);
  }
}

async function download(url: string): Promise<number> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`GET ${url}: ${res.status}`);
  let n = 0;
  for await (const buf of res.body) n += buf.length;
  return n;
}

interface Figures {
  ingestSeconds: number;
  downloadSeconds: number;
  downloadBytes: number;
}

async function measure(server: { url: string; dataDir: string }, nar: PathInfo, afterPush: () => void = () => {}): Promise<Figures> {
  const token = mintToken(server.dataDir);
  await createCache(server.url, token, "bench");
  let t = performance.now();
  await uploadPath(server.url, token, "bench", nar);
  const ingestSeconds = (performance.now() - t) / 1000;
  afterPush();
  const narinfo = await (await fetch(`${server.url}/bench/${storePathHash(nar.path)}.narinfo`)).text();
  const url = /^URL: (.+)$/m.exec(narinfo)![1]!;
  t = performance.now();
  const downloadBytes = await download(`${server.url}/bench/${url}`);
  return { ingestSeconds, downloadSeconds: (performance.now() - t) / 1000, downloadBytes };
}

await main(async () => {
  const flags = parseFlags();
  requireNix();
  const bytes = flags.quick ? 64 * MiB : 256 * MiB;
  section(`s3: ingest and download of a ${fmtMiB(bytes, 0)} NAR, S3 (s3rver) vs local disk`);
  const mib = Math.round(bytes / MiB);
  const [path] = nixBuild(`let ${SH_PRELUDE} in sh {
    name = "garret-bench-ingest-${mib}m-v1";
    script = "/bin/mkdir $out; ${mixedDataScript("$out/random", "$out/text", bytes)}";
  }`, "s3");
  const nar = pathInfo([path!])[0]!;

  const local = await startServer({});
  const localFigures = await measure(local, nar);
  await local.stop();

  const s3 = await startS3();
  const server = await startServer({
    GARRET_STORAGE_TYPE: "s3", GARRET_S3_BUCKET: BUCKET, GARRET_S3_ENDPOINT: s3.endpoint,
    GARRET_S3_ACCESS_KEY_ID: "S3RVER", GARRET_S3_SECRET_ACCESS_KEY: "S3RVER",
  });
  // The startup check (HEAD bucket) is not part of the push.
  const atStart = new Map(s3.counts);
  let pushCounts = new Map<string, number>();
  const s3Figures = await measure(server, nar, () => {
    pushCounts = new Map([...s3.counts].map(([k, v]) => [k, v - (atStart.get(k) ?? 0)]));
  });
  const readCounts = new Map([...s3.counts].map(([k, v]) => [k, v - (atStart.get(k) ?? 0) - (pushCounts.get(k) ?? 0)]));
  await server.stop();
  await s3.stop();

  const pushed = [...pushCounts.values()].reduce((a, b) => a + b, 0);
  const read = [...readCounts.values()].reduce((a, b) => a + b, 0);
  const perGiB = pushed / (nar.narSize / GiB);
  const mibps = (b: number, s: number) => b / MiB / s;
  const rows = [
    ["ingest (upload-path)", `${mibps(nar.narSize, localFigures.ingestSeconds).toFixed(1)} MiB/s`,
      `${mibps(nar.narSize, s3Figures.ingestSeconds).toFixed(1)} MiB/s`, ratio(localFigures.ingestSeconds, s3Figures.ingestSeconds)],
    ["download (GET nar)", `${mibps(localFigures.downloadBytes, localFigures.downloadSeconds).toFixed(1)} MiB/s`,
      `${mibps(s3Figures.downloadBytes, s3Figures.downloadSeconds).toFixed(1)} MiB/s`, ratio(localFigures.downloadSeconds, s3Figures.downloadSeconds)],
  ];
  printTable("S3 vs local disk", ["operation", "local disk", "S3 (s3rver)", "S3/local"], rows, [
    `NAR ${fmtMiB(nar.narSize)}; ingest ${fmtSec(localFigures.ingestSeconds)} local, ${fmtSec(s3Figures.ingestSeconds)} S3`,
  ]);
  const kinds = [...new Set([...pushCounts.keys(), ...readCounts.keys()])];
  printTable("S3 requests", ["request", "push", "download"],
    kinds.map((k) => [k, String(pushCounts.get(k) ?? 0), String(readCounts.get(k) ?? 0)]), [
      `push: ${pushed} requests for ${fmtMiB(nar.narSize)} = ${perGiB.toFixed(1)} per GiB pushed (goal < ${GOAL_REQUESTS_PER_GIB})`,
      `download: ${read} ranged GETs (coalesced reads of up to 4 MiB)`,
    ]);
  const summary: SummaryRow[] = [{
    bench: "s3", metric: "S3 requests per GiB pushed", garret: perGiB.toFixed(1), reference: "-", ratio: "-",
    goal: `< ${GOAL_REQUESTS_PER_GIB}`, ok: perGiB < GOAL_REQUESTS_PER_GIB,
  }, {
    bench: "s3", metric: "ingest MiB/s, S3 vs local", garret: mibps(nar.narSize, s3Figures.ingestSeconds).toFixed(1),
    reference: mibps(nar.narSize, localFigures.ingestSeconds).toFixed(1), ratio: ratio(localFigures.ingestSeconds, s3Figures.ingestSeconds),
    goal: "-", ok: null,
  }];
  writeSummary(flags, summary);
  note("done");
});
