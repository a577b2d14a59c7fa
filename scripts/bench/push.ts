/**
 * Push bench (issue 6, acceptance 1): wall time of `garret push` of a closure of 50 small paths
 * to a fresh local server with -j 1 and with -j 8, and the speedup. Goal: -j 8 at least 2x faster.
 *
 *   bun scripts/bench/push.ts [--quick] [--summary FILE]
 *
 * Each case starts one server (the shipped binary) and warms it with a few pushes (WARMUP), as a
 * server in service is warm; every timed run then pushes a closure of fresh contents into a new cache, so
 * all 50 paths are missing and really uploaded. -j 1 and -j 8 runs alternate so that machine
 * load drifts hit both alike. The time is the whole CLI run as a user sees it (process start,
 * closure query, missing-paths, uploads).
 */
import { cpus } from "node:os";
import {
  buildWideClosure, createCache, garretCmd, median, mintToken, parseFlags, printTable, procCpuSeconds, removeDir, requireNix, run, section, startGarret, stopAll, tempDir, writeSummary, type Garret, type SummaryRow,
} from "./common.ts";

const PATHS = 50;
/**
 * Pushes (alternately -j 8 and -j 1) before the timed ones. A server in service has long compiled
 * its hot paths; a fresh one spends its first few hundred uploads compiling them on a JIT thread
 * (6-10 ms of CPU per push over the first ten pushes here, under 2 ms after), which on two CPUs
 * weighs on the -j 8 runs, whose client and server keep both CPUs busy, far more than on -j 1.
 */
const WARMUP = 4;

const buildClosure = (bytes: number, tag: string): string => buildWideClosure(PATHS, bytes, tag);

/** A request forwarder that waits latencyMs before each request: a server one network hop away. */
function latencyProxy(target: string, latencyMs: number): ReturnType<typeof Bun.serve> {
  return Bun.serve({
    port: 0, hostname: "127.0.0.1", idleTimeout: 255,
    async fetch(req) {
      await Bun.sleep(latencyMs);
      const url = new URL(req.url);
      const headers = new Headers(req.headers);
      headers.delete("host");
      const body = req.body ? await req.arrayBuffer() : undefined;
      return fetch(`${target}${url.pathname}${url.search}`, { method: req.method, headers, body });
    },
  });
}

/**
 * Wall time of one `garret push` of `top` into a new cache on the running server `g` (reached
 * through `via`). Every path is new to the server, so all 50 are really uploaded.
 */
interface PushRun {
  /** Wall time of the whole command. */
  secs: number;
  /** The push itself as the command reports it (--json "seconds"): closure, queries, uploads; no process start or exit. */
  pushSecs: number;
  /** CPU time the client process and the server spent on it. */
  cpu: number;
}

async function timePush(g: Garret, via: string, token: string, cache: string, top: string, jobs: number): Promise<PushRun> {
  await createCache(g.url, token, cache);
  const env = { XDG_CONFIG_HOME: tempDir("garret-bench-client-") };
  try {
    const login = run(garretCmd("login", "b", via, token), { env });
    if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
    const serverCpu = procCpuSeconds(g.pid);
    const t = performance.now();
    const proc = Bun.spawn(garretCmd("push", `b:${cache}`, "-j", String(jobs), "--json", "--compression", "none", top), {
      env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const secs = (performance.now() - t) / 1000;
    const usage = proc.resourceUsage();
    const cpu = procCpuSeconds(g.pid) - serverCpu + (usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1e6 : NaN);
    if (code !== 0) throw new Error(`push -j ${jobs} failed (${code}): ${stderr}`);
    const s = JSON.parse(stdout) as { closure: number; uploaded: number; deduplicated: number; failed: number; seconds: number };
    if (s.closure !== PATHS || s.uploaded !== PATHS || s.failed !== 0) {
      throw new Error(`push -j ${jobs} gave a wrong result (expected ${PATHS} uploaded): ${stdout}`);
    }
    // Correct either way: every path is served.
    run(garretCmd("login", "direct", g.url, token), { env });
    const again = run(garretCmd("push", `direct:${cache}`, "--json", top), { env });
    if (JSON.parse(again.stdout).alreadyCached !== PATHS) throw new Error(`after push -j ${jobs} the cache lacks paths: ${again.stdout}`);
    return { secs, cpu, pushSecs: s.seconds };
  } finally {
    removeDir(env.XDG_CONFIG_HOME);
  }
}

const flags = parseFlags();
requireNix();
section("push: 50 small paths to a local server, -j 1 vs -j 8 (scripts/bench/push.ts)");
const rounds = flags.quick ? 3 : 7;
// Fresh contents per bench run: a path uploaded by an earlier run would be stored already.
const runId = `${Date.now().toString(36)}`;
// Path size and added latency per request (0: the server on loopback, as the goal asks; 5 ms: one
// network hop away, where parallel streams matter most).
const CASES: [number, number][] = flags.quick ? [[16 * 1024, 0]] : [[16 * 1024, 0], [256 * 1024, 0], [16 * 1024, 5]];
const table: string[][] = [];
const rows: SummaryRow[] = [];
try {
  for (const [bytes, latency] of CASES) {
    // One server per case, warm as a server in service is; each run gets fresh contents.
    const kib = `${bytes / 1024} KiB${latency ? `, +${latency} ms per request` : ""}`;
    const tops = Array.from({ length: WARMUP + 2 * rounds }, (_, i) => buildClosure(bytes, `${bytes}-${latency}-${runId}-${i}`));
    const g = await startGarret();
    const proxy = latency > 0 ? latencyProxy(g.url, latency) : null;
    try {
      const token = mintToken(g.dataDir);
      const via = proxy ? `http://127.0.0.1:${proxy.port}` : g.url;
      for (let w = 0; w < WARMUP; w++) await timePush(g, via, token, `warmup${w}`, tops[w]!, w % 2 ? 1 : 8);
      const runs: Record<number, PushRun[]> = { 1: [], 8: [] };
      let n = WARMUP;
      for (let i = 0; i < rounds; i++) {
        for (const j of [1, 8]) runs[j]!.push(await timePush(g, via, token, `run${n}`, tops[n++]!, j));
      }
      const t1 = median(runs[1]!.map((r) => r.secs));
      const t8 = median(runs[8]!.map((r) => r.secs));
      const p1 = median(runs[1]!.map((r) => r.pushSecs));
      const p8 = median(runs[8]!.map((r) => r.pushSecs));
      // The best -j 8 could do here: its CPU time (client and server) spread over every CPU.
      const floor8 = median(runs[8]!.map((r) => r.cpu)) / cpus().length;
      table.push([kib, `${t1.toFixed(3)} s`, `${t8.toFixed(3)} s`, `${(t1 / t8).toFixed(2)}x`,
        `${p1.toFixed(3)} / ${p8.toFixed(3)} s = ${(p1 / p8).toFixed(2)}x`,
        `${(median(runs[1]!.map((r) => r.cpu)) * 1000).toFixed(0)} / ${(median(runs[8]!.map((r) => r.cpu)) * 1000).toFixed(0)} ms`,
        latency > 0 ? "-" : `${(t1 / floor8).toFixed(2)}x`,
        runs[1]!.map((r) => r.secs.toFixed(3)).join(" "), runs[8]!.map((r) => r.secs.toFixed(3)).join(" ")]);
      // The goal is the issue's: small paths. 256 KiB paths are shown for what they tell (see the notes).
      const small = bytes <= 16 * 1024;
      rows.push({
        bench: "push", metric: `50 paths of ${kib}: -j 8 vs -j 1`, garret: `${t8.toFixed(3)} s`, reference: `${t1.toFixed(3)} s`,
        ratio: `${(t1 / t8).toFixed(2)}x faster`, goal: small ? ">= 2x faster" : "-", ok: small ? t1 / t8 >= 2 : null,
      });
    } finally {
      proxy?.stop(true);
      await g.stop();
    }
  }
} finally {
  await stopAll();
}
printTable(`garret push of ${PATHS} paths, whole command wall time, median of ${rounds} runs, fresh contents per run`,
  ["paths", "-j 1", "-j 8", "speedup", "push itself -j 1 / -j 8", "CPU -j 1 / -j 8", "CPU bound", "-j 1 runs", "-j 8 runs"], table,
  ["goal: -j 8 at least 2x faster than -j 1 (whole command) for small paths (16 KiB)",
    "push itself: the push's own duration as the command reports it (--json seconds: closure query, cache",
    "settings, missing-paths and uploads), without the process's start and exit (about 10 ms of the Bun runtime).",
    "CPU: client and server CPU time of one push (median). CPU bound: the speedup -j 8 would reach if its CPU",
    `time were spread over all ${cpus().length} CPUs with none idle. On loopback -j 1 leaves little CPU idle (client and server`,
    "take turns), so -j 8 gains by overlapping their work and by the server's lower cost per upload under load; the",
    "serial parts of a push (start-up, closure query, missing-paths, the top path waiting for its references) stay.",
    "Over a network -j 8 also hides the round trips (the +5 ms case).",
    "256 KiB paths carry no goal: each costs about 3 ms of CPU (SHA-256 of the NAR and of its chunks,",
    "FastCDC, zstd, the client reading it), so -j 1 already keeps one CPU busy and on this machine's two",
    "CPUs -j 8 can at best about double that, less the serial start and closure query."]);
writeSummary(flags, rows);
