/**
 * Serving benchmark: garret against nginx serving a `nix copy --to file://` cache of the same
 * closure, both on loopback.
 *
 *   bun scripts/bench/serve.ts [--quick]
 *
 * The closure: 300 small-to-medium paths (4 KiB to ~300 KiB each, half random, half hex text)
 * plus a top path referencing them all, built once by nix-build. It is pushed to a public garret
 * cache with `garret push`, and copied with `nix copy --to file://DIR?compression=zstd` into a
 * directory that nginx (one worker, sendfile, access log to a file) serves.
 *
 * Measured with wrk (a Lua script cycles through the URL list; Bun fetch loops if wrk cannot be
 * installed), servers and wrk pinned to separate CPUs, after a 1 s warm-up; 3 rounds of 3 s (--quick:
 * 2 of 2 s) alternate the servers, and each figure is the best round:
 *  (a) every narinfo of the closure, in turn, over one keep-alive connection: requests/s;
 *  (b) every NAR (the URLs each server's own narinfos give) over 1 and over 16 connections: MB/s
 *      (10^6 bytes, as transferred, headers included) and NARs/s.
 * Before that, every NAR garret serves is fetched, decompressed and checked against its NarHash.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  KiB, createCache, dirBytes, ensureTool, fmtSec, fmtSize, freePort, garretCmd, main, mintToken, mixedDataScript,
  nixBuild, NIX_OPTS, note, parseFlags, pathInfo, printTable, registerStoppable, removeDir, requireNix, run, runOk,
  section, SH_PRELUDE, startGarret, storePathHash, tempDir, timeOk, unregisterStoppable, uploadPath, writeSummary,
  type PathInfo, type SummaryRow,
} from "./common.ts";

const COUNT = 300;
const CACHE = "serve";
const GOAL_NARINFO = 0.5;
const GOAL_NAR = 0.8;

/** Sizes spread over 4 KiB .. ~300 KiB, the same on every run. */
const sizeOf = (i: number): number => 4 * KiB + ((i * 7919) % 297) * KiB + ((i * 131) % 1000);

function buildClosure(): { top: string; closure: PathInfo[] } {
  const deps = Array.from({ length: COUNT }, (_, i) =>
    `(sh { name = "garret-bench-serve-${i}-v1"; script = "/bin/mkdir $out; ${mixedDataScript("$out/random", "$out/text", sizeOf(i))}"; })`);
  const expr = `let ${SH_PRELUDE}
    deps = [
      ${deps.join("\n      ")}
    ];
  in sh { name = "garret-bench-serve-top-v1"; script = "/bin/mkdir $out; echo \${builtins.concatStringsSep " " (map toString deps)} > $out/refs"; }`;
  const t = performance.now();
  const [top] = nixBuild(expr, "serve");
  const closure = pathInfo([top!], true);
  if (closure.length !== COUNT + 1) throw new Error(`closure of ${top} has ${closure.length} paths, expected ${COUNT + 1}`);
  const total = closure.reduce((n, p) => n + p.narSize, 0);
  note(`closure of ${closure.length} paths, ${fmtSize(total)} of NAR, ready in ${fmtSec((performance.now() - t) / 1000)}`);
  return { top: top!, closure };
}

// ---------------------------------------------------------------------------------------------
// CPU placement

/**
 * Servers run on the first half of the CPUs and the load generator on the other half (with
 * taskset), so neither steals the other's core and a one-connection ping-pong is not at the mercy
 * of where the scheduler happens to put the two ends (unpinned, nginx's narinfo rate varied from
 * 9k to 26k requests/s between runs here). Null when there is one CPU or no taskset.
 */
function cpuSplit(): { server: string; client: string } | null {
  const n = navigator.hardwareConcurrency;
  if (n < 2 || !Bun.which("taskset") || process.env.BENCH_NO_PIN) return null;
  const half = Math.floor(n / 2);
  return { server: half === 1 ? "0" : `0-${half - 1}`, client: n - half === 1 ? String(half) : `${half}-${n - 1}` };
}

const CPUS = cpuSplit();

/** Pins every thread of a running process (and so the threads it starts later) to the server CPUs. */
function pinServer(pid: number): void {
  if (CPUS) runOk(["taskset", "-a", "-p", "-c", CPUS.server, String(pid)]);
}

const onClientCpus = (cmd: string[]): string[] => (CPUS ? ["taskset", "-c", CPUS.client, ...cmd] : cmd);

// ---------------------------------------------------------------------------------------------
// load generation

interface Load {
  tool: string;
  requests: number;
  bytes: number;
  seconds: number;
  errors: number;
  p50ms: number;
  p99ms: number;
}

const WRK_LUA = `
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

class Loader {
  private readonly dir = tempDir("garret-bench-wrk-");
  readonly wrk: boolean;

  constructor(useWrk: boolean) {
    this.wrk = useWrk;
    writeFileSync(join(this.dir, "paths.lua"), WRK_LUA);
  }

  async load(base: string, paths: string[], conns: number, seconds: number): Promise<Load> {
    return this.wrk ? this.wrkLoad(base, paths, conns, seconds) : this.fetchLoad(base, paths, conns, seconds);
  }

  private wrkLoad(base: string, paths: string[], conns: number, seconds: number): Load {
    const list = join(this.dir, "paths.txt");
    writeFileSync(list, `${paths.join("\n")}\n`);
    const threads = Math.min(conns, 2);
    const out = runOk(onClientCpus(["wrk", "-t", String(threads), "-c", String(conns), "-d", `${seconds}s`, "--timeout", "10s",
      "-s", join(this.dir, "paths.lua"), base]), { env: { BENCH_PATHS: list } });
    const m = /^WRKJSON (.*)$/m.exec(out);
    if (!m) throw new Error(`no summary in wrk output:\n${out}`);
    const j = JSON.parse(m[1]!) as { requests: number; bytes: number; duration_us: number; errors: number; p50_us: number; p99_us: number };
    return {
      tool: "wrk", requests: j.requests, bytes: j.bytes, seconds: j.duration_us / 1e6, errors: j.errors,
      p50ms: j.p50_us / 1000, p99ms: j.p99_us / 1000,
    };
  }

  /** Fallback when wrk is missing: `conns` fetch loops (Bun keeps connections alive). */
  private async fetchLoad(base: string, paths: string[], conns: number, seconds: number): Promise<Load> {
    const start = performance.now();
    const end = start + seconds * 1000;
    const lat: number[] = [];
    let requests = 0;
    let bytes = 0;
    let errors = 0;
    await Promise.all(Array.from({ length: conns }, async () => {
      let i = 0;
      while (performance.now() < end) {
        const t = performance.now();
        try {
          const res = await fetch(base + paths[i++ % paths.length]!);
          for await (const buf of res.body!) bytes += buf.length;
          if (res.status >= 400) errors++;
        } catch {
          errors++;
        }
        requests++;
        lat.push(performance.now() - t);
      }
    }));
    lat.sort((a, b) => a - b);
    return {
      tool: "bun fetch", requests, bytes, seconds: (performance.now() - start) / 1000, errors,
      p50ms: lat[Math.floor(lat.length * 0.5)] ?? 0, p99ms: lat[Math.floor(lat.length * 0.99)] ?? 0,
    };
  }

  close(): void {
    removeDir(this.dir);
  }
}

// ---------------------------------------------------------------------------------------------
// nginx

async function startNginx(root: string): Promise<{ url: string; stop(): Promise<void> } | null> {
  const prefix = tempDir("garret-bench-nginx-");
  const port = freePort();
  writeFileSync(join(prefix, "nginx.conf"), `
worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log;
events { worker_connections 1024; }
http {
  access_log ${prefix}/access.log;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 100000000;
  types { text/x-nix-narinfo narinfo; application/x-nix-nar zst; text/x-nix-cache-info nix-cache-info; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`);
  const nginx = ["nginx", "-p", prefix, "-e", `${prefix}/error.log`, "-c", `${prefix}/nginx.conf`];
  const proc = Bun.spawn(CPUS ? ["taskset", "-c", CPUS.server, ...nginx] : nginx, {
    stdout: "ignore", stderr: "pipe", stdin: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    unregisterStoppable(s);
    if (proc.exitCode === null) {
      proc.kill("SIGTERM");
      await proc.exited;
    }
    removeDir(prefix);
  };
  const s = { url, stop };
  registerStoppable(s);
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      const res = await fetch(`${url}/nix-cache-info`);
      await res.arrayBuffer();
      if (res.ok) return s;
    } catch {
      /* not up yet */
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      const err = await new Response(proc.stderr).text().catch(() => "");
      note(`nginx did not start: ${err.trim()} ${run(["cat", `${prefix}/error.log`]).stdout.trim()}`);
      await stop();
      return null;
    }
    await Bun.sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------

interface Target {
  name: string;
  base: string;
  narinfoPaths: string[];
  narPaths: string[];
  narBytes: number;
}

/**
 * Reads every narinfo from a server and GETs every NAR they point to, counting bytes. With
 * `closureToVerify`, each NAR is also decompressed and checked against the path's NarHash. HTTP
 * framing problems (no Content-Length on a NAR, a HEAD that disagrees with the GET) become notes.
 */
async function collect(name: string, base: string, prefix: string, closure: PathInfo[], verify: boolean, problems: string[]): Promise<Target> {
  const narinfoPaths = closure.map((p) => `${prefix}/${storePathHash(p.path)}.narinfo`);
  const narPaths: string[] = [];
  let narBytes = 0;
  let noLength = 0;
  let badHead = "";
  for (let i = 0; i < closure.length; i++) {
    const path = narinfoPaths[i]!;
    const res = await fetch(base + path);
    const info = await res.text();
    if (res.status !== 200) throw new Error(`${name}: GET ${path} answered ${res.status}: ${info}`);
    const url = /^URL: (.+)$/m.exec(info)?.[1];
    if (!url) throw new Error(`${name}: narinfo ${path} has no URL:\n${info}`);
    const narPath = `${prefix}/${url}`;
    const got = await fetch(base + narPath);
    const body = new Uint8Array(await got.arrayBuffer());
    if (got.status !== 200) throw new Error(`${name}: GET ${narPath} answered ${got.status}`);
    if (got.headers.get("content-length") === null) noLength++;
    const head = await fetch(base + narPath, { method: "HEAD" });
    const headLength = head.headers.get("content-length");
    if (!badHead && (head.status !== 200 || headLength !== String(body.length))) {
      badHead = `HEAD ${narPath} answered ${head.status} with Content-Length ${headLength}, but GET sent ${body.length} bytes`;
    }
    if (verify) {
      const nar = url.endsWith(".zst") ? Bun.zstdDecompressSync(body) : body;
      const hash = new Bun.CryptoHasher("sha256").update(nar).digest("hex");
      if (hash !== closure[i]!.narHashHex) {
        throw new Error(`${name}: NAR of ${closure[i]!.path} decompresses to sha256 ${hash}, expected ${closure[i]!.narHashHex}`);
      }
    }
    narBytes += body.length;
    narPaths.push(narPath);
  }
  if (noLength > 0) problems.push(`${name}: ${noLength} of ${closure.length} NAR answers had no Content-Length (chunked)`);
  if (badHead) problems.push(`${name}: ${badHead}`);
  if (verify) note(`${name}: all ${closure.length} NARs fetched, decompressed and matched their NarHash`);
  return { name, base, narinfoPaths, narPaths, narBytes };
}

const rps = (l: Load): number => l.requests / l.seconds;
const mbps = (l: Load): number => l.bytes / l.seconds / 1e6;

await main(async () => {
  const flags = parseFlags();
  requireNix();
  const seconds = flags.quick ? 2 : 3;
  const rounds = flags.quick ? 2 : 3;
  section(`serve: garret vs nginx over a ${COUNT + 1}-path closure (best of ${rounds} rounds of ${seconds} s)`);
  const { top, closure } = buildClosure();
  const haveWrk = ensureTool("wrk", ["wrk"]);
  const haveNginx = ensureTool("nginx", ["nginx-light", "nginx"]);
  if (!haveWrk) note("wrk could not be installed: loading with Bun fetch loops instead");
  if (!haveNginx) note("SKIPPING the nginx comparison: nginx could not be installed with apt-get");

  // garret: push the closure with the CLI
  const server = await startGarret();
  const token = mintToken(server.dataDir);
  await createCache(server.url, token, CACHE);
  const xdg = tempDir("garret-bench-xdg-");
  const env = { XDG_CONFIG_HOME: xdg };
  runOk(garretCmd("login", "bench", server.url, token), { env });
  const t0 = performance.now();
  const push = run(garretCmd("push", `bench:${CACHE}`, top), { env });
  let pushSeconds = (performance.now() - t0) / 1000;
  removeDir(xdg);
  let pushProblem: string | null = null;
  if (push.code !== 0) {
    // The top path has 300 references: its metadata does not fit in one request header for some
    // servers. Report it, upload that path with a JSON preamble instead, and go on measuring.
    const failed = push.stderr.split("\n").filter((l) => l.startsWith("✗"));
    const onlyTop = failed.length === 1 && failed[0]!.includes(top);
    if (!onlyTop) throw new Error(`garret push failed (${push.code}):\n${push.stderr}${push.stdout.slice(-2000)}`);
    pushProblem = failed[0]!.slice(failed[0]!.indexOf(": ") + 2);
    note(`PROBLEM: garret push failed for the top path (${closure.find((p) => p.path === top)!.references.length} references): ${pushProblem}`);
    note("uploading it with the metadata in a body preamble (X-Attic-Nar-Info-Preamble-Size) instead");
    const t1 = performance.now();
    await uploadPath(server.url, token, CACHE, closure.find((p) => p.path === top)!, { preamble: true });
    pushSeconds += (performance.now() - t1) / 1000;
  }
  note(`garret push: ${closure.length} paths in ${fmtSec(pushSeconds)}, storage ${fmtSize(dirBytes(`${server.dataDir}/storage`))}`);

  // nix copy to a file:// cache for nginx
  const nixDir = tempDir("garret-bench-filecache-");
  registerStoppable({ stop: () => removeDir(nixDir) });
  chmodSync(nixDir, 0o755); // nginx's worker runs as nobody
  const copySeconds = timeOk(["nix", "--extra-experimental-features", "nix-command", "copy", ...NIX_OPTS,
    "--to", `file://${nixDir}?compression=zstd`, top]);
  note(`nix copy file://: ${closure.length} paths in ${fmtSec(copySeconds)}, ${fmtSize(dirBytes(nixDir))}`);

  const nginx = haveNginx ? await startNginx(nixDir) : null;
  pinServer(server.pid);
  note(CPUS ? `servers pinned to CPU ${CPUS.server}, load generator to CPU ${CPUS.client}` : "one CPU or no taskset: nothing pinned");
  const loader = new Loader(haveWrk);
  const problems: string[] = [];
  const targets: Target[] = [await collect("garret", server.url, `/${CACHE}`, closure, true, problems)];
  if (nginx) targets.push(await collect("nginx", nginx.url, "", closure, false, problems));
  for (const p of problems) note(`PROBLEM: ${p}`);

  // Rounds alternate the servers; each figure is the best round, since interference only slows down.
  const results = new Map<string, { narinfo: Load; nar1: Load; nar16: Load }>();
  const best = (a: Load | undefined, b: Load, by: (l: Load) => number): Load => (a && by(a) >= by(b) ? a : b);
  for (let round = 1; round <= rounds; round++) {
    for (const t of targets) {
      if (round === 1) {
        await loader.load(t.base, t.narinfoPaths, 1, 1); // warm-up
        await loader.load(t.base, t.narPaths, 16, 1); // warm-up
      }
      const narinfo = await loader.load(t.base, t.narinfoPaths, 1, seconds);
      const nar1 = await loader.load(t.base, t.narPaths, 1, seconds);
      const nar16 = await loader.load(t.base, t.narPaths, 16, seconds);
      note(`round ${round}/${rounds}, ${t.name}: ${rps(narinfo).toFixed(0)} narinfo/s, NARs ${mbps(nar1).toFixed(1)} MB/s (1 conn), ${mbps(nar16).toFixed(1)} MB/s (16 conns)`);
      for (const [what, l] of [["narinfo", narinfo], ["NAR x1", nar1], ["NAR x16", nar16]] as const) {
        if (l.errors > 0) throw new Error(`${t.name} ${what}: ${l.errors} errors (non-2xx or socket) in ${l.requests} requests`);
      }
      const prev = results.get(t.name);
      results.set(t.name, {
        narinfo: best(prev?.narinfo, narinfo, rps), nar1: best(prev?.nar1, nar1, mbps), nar16: best(prev?.nar16, nar16, mbps),
      });
    }
  }
  loader.close();
  await server.stop();
  removeDir(server.dataDir);
  if (nginx) await nginx.stop();
  removeDir(nixDir);

  const g = results.get("garret")!;
  const n = results.get("nginx");
  const cell = (l: Load | undefined, f: (l: Load) => string): string => (l ? f(l) : "skipped");
  const rel = (a: number, b: number | undefined): string => (b ? `${(a / b).toFixed(2)}x` : "-");
  const rows: string[][] = [
    ["narinfo, 1 conn", "requests/s", rps(g.narinfo).toFixed(0), cell(n?.narinfo, (l) => rps(l).toFixed(0)),
      rel(rps(g.narinfo), n && rps(n.narinfo)), `>= ${GOAL_NARINFO}x`],
    ["narinfo, 1 conn", "p50 / p99 ms", `${g.narinfo.p50ms.toFixed(2)} / ${g.narinfo.p99ms.toFixed(2)}`,
      cell(n?.narinfo, (l) => `${l.p50ms.toFixed(2)} / ${l.p99ms.toFixed(2)}`), "-", ""],
    ["NARs, 1 conn", "MB/s", mbps(g.nar1).toFixed(1), cell(n?.nar1, (l) => mbps(l).toFixed(1)),
      rel(mbps(g.nar1), n && mbps(n.nar1)), `>= ${GOAL_NAR}x`],
    ["NARs, 1 conn", "NARs/s", rps(g.nar1).toFixed(0), cell(n?.nar1, (l) => rps(l).toFixed(0)),
      rel(rps(g.nar1), n && rps(n.nar1)), ""],
    ["NARs, 16 conns", "MB/s", mbps(g.nar16).toFixed(1), cell(n?.nar16, (l) => mbps(l).toFixed(1)),
      rel(mbps(g.nar16), n && mbps(n.nar16)), `>= ${GOAL_NAR}x`],
    ["NARs, 16 conns", "NARs/s", rps(g.nar16).toFixed(0), cell(n?.nar16, (l) => rps(l).toFixed(0)),
      rel(rps(g.nar16), n && rps(n.nar16)), ""],
    ["all NARs once", "bytes served", fmtSize(targets[0]!.narBytes), targets[1] ? fmtSize(targets[1].narBytes) : "skipped",
      rel(targets[0]!.narBytes, targets[1]?.narBytes), ""],
    ["upload the closure", "seconds", `${pushSeconds.toFixed(2)} (garret push)`, `${copySeconds.toFixed(2)} (nix copy)`,
      rel(copySeconds, pushSeconds) + " speed", ""],
  ];
  printTable(`Serving ${closure.length} paths over loopback (${g.narinfo.tool}, best of ${rounds} rounds of ${seconds} s)`,
    ["workload", "unit", "garret", "nginx", "garret/nginx", "goal"], rows, [
      "nginx: 1 worker, sendfile on, access log to a file, serving the nix copy --to file://...?compression=zstd dir.",
      "garret: 1 process, public cache, request log to a file. MB/s = 10^6 bytes/s as transferred (headers included).",
      CPUS ? `servers on CPU ${CPUS.server}, wrk on CPU ${CPUS.client} (taskset).` : "nothing pinned (one CPU or no taskset).",
      ...(pushProblem ? [`PROBLEM: garret push failed for the top path (${COUNT} references): ${pushProblem}`] : []),
      ...problems.map((p) => `PROBLEM: ${p}`),
    ]);

  const summary: SummaryRow[] = [];
  const add = (metric: string, gv: number, nv: number | undefined, unit: string, goal: number, digits: number): void => {
    summary.push({
      bench: "serve", metric, garret: `${gv.toFixed(digits)} ${unit}`, reference: nv === undefined ? "skipped" : `${nv.toFixed(digits)} ${unit} (nginx)`,
      ratio: nv ? `${(gv / nv).toFixed(2)}x` : "-", goal: `>= ${goal}x`, ok: nv ? gv / nv >= goal : null,
    });
  };
  summary.push({
    bench: "serve", metric: `garret push of ${closure.length} paths (top has ${COUNT} refs)`,
    garret: pushProblem ? "top path FAILED" : fmtSec(pushSeconds), reference: `${fmtSec(copySeconds)} (nix copy)`,
    ratio: pushProblem ? "-" : `${(copySeconds / pushSeconds).toFixed(2)}x`, goal: "succeeds", ok: pushProblem === null,
  });
  add("narinfo, 1 conn", rps(g.narinfo), n && rps(n.narinfo), "req/s", GOAL_NARINFO, 0);
  add("NARs, 1 conn", mbps(g.nar1), n && mbps(n.nar1), "MB/s", GOAL_NAR, 1);
  add("NARs, 16 conns", mbps(g.nar16), n && mbps(n.nar16), "MB/s", GOAL_NAR, 1);
  writeSummary(flags, summary);
});
