/**
 * Push bench (issue 6, acceptance 1): wall time of `garret push` of a closure of 50 small paths
 * to a fresh local server with -j 1 and with -j 8, and the speedup. Goal: -j 8 at least 2x faster.
 *
 *   bun scripts/bench/push.ts [--quick] [--summary FILE]
 *
 * Each run gets its own server and data dir, so every path is missing and really uploaded; -j 1
 * and -j 8 runs alternate so that machine load drifts hit both alike. The time is the whole CLI
 * run as a user sees it (process start, closure query, missing-paths, uploads).
 */
import { cpus } from "node:os";
import {
  createCache, garretCmd, mintToken, nixBuild, parseFlags, printTable, removeDir, requireNix, run, section,
  startGarret, stopAll, tempDir, writeSummary, type SummaryRow,
} from "./common.ts";

const PATHS = 50;

/** 49 leaves of ~`bytes` of text (builtins.toFile) and a top referencing all: 50 paths. */
function buildClosure(bytes: number): string {
  const leaves = PATHS - 1;
  const expr = `
    let
      pad = i: builtins.concatStringsSep "" (builtins.genList (j: "garret push bench leaf \${toString i} line \${toString j}\\n") (${bytes} / 40));
      leaves = builtins.genList (i: builtins.toFile "garret-bench-push-${bytes}-leaf-\${toString i}" (pad i)) ${leaves};
    in derivation {
      name = "garret-bench-push-${bytes}-top"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "echo \${builtins.concatStringsSep " " leaves} > $out" ];
    }`;
  return nixBuild(expr, `push-${bytes}`)[0]!;
}

async function timePush(top: string, jobs: number, latencyMs = 0): Promise<number> {
  const g = await startGarret();
  try {
    const token = mintToken(g.dataDir);
    await createCache(g.url, token, "bench");
    const env = { XDG_CONFIG_HOME: tempDir("garret-bench-client-") };
    const login = run(garretCmd("login", "b", g.url, token), { env });
    if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`);
    let proxy: ReturnType<typeof Bun.serve> | null = null;
    if (latencyMs > 0) {
      // Each request waits latencyMs before it is forwarded: a server one network hop away.
      proxy = Bun.serve({
        port: 0, hostname: "127.0.0.1", idleTimeout: 255,
        async fetch(req) {
          await Bun.sleep(latencyMs);
          const url = new URL(req.url);
          const headers = new Headers(req.headers);
          headers.delete("host");
          const body = req.body ? await req.arrayBuffer() : undefined;
          return fetch(`${g.url}${url.pathname}${url.search}`, { method: req.method, headers, body });
        },
      });
      run(garretCmd("login", "b", `http://127.0.0.1:${proxy.port}`, token), { env });
    }
    const t = performance.now();
    const proc = Bun.spawn(garretCmd("push", "b:bench", "-j", String(jobs), "--json", "--compression", "none", top), {
      env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const secs = (performance.now() - t) / 1000;
    proxy?.stop(true);
    const r = { code, stdout, stderr };
    if (r.code !== 0) throw new Error(`push -j ${jobs} failed (${r.code}): ${r.stderr}`);
    const s = JSON.parse(r.stdout) as { closure: number; uploaded: number; deduplicated: number; failed: number };
    if (s.closure !== PATHS || s.uploaded + s.deduplicated !== PATHS || s.failed !== 0) {
      throw new Error(`push -j ${jobs} gave a wrong result: ${r.stdout}`);
    }
    // Correct either way: every path is served.
    run(garretCmd("login", "direct", g.url, token), { env });
    const missing = run(garretCmd("push", "direct:bench", "--json", top), { env });
    if (JSON.parse(missing.stdout).alreadyCached !== PATHS) throw new Error(`after push -j ${jobs} the cache lacks paths: ${missing.stdout}`);
    removeDir(env.XDG_CONFIG_HOME);
    return secs;
  } finally {
    await g.stop();
    removeDir(g.dataDir);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const flags = parseFlags();
requireNix();
section("push: 50 small paths to a local server, -j 1 vs -j 8 (scripts/bench/push.ts)");
const rounds = flags.quick ? 2 : 3;
// Path size and added latency per request (0: the server on loopback, as the goal asks; 5 ms: one
// network hop away, where parallel streams matter most).
const CASES: [number, number][] = flags.quick ? [[16 * 1024, 0]] : [[16 * 1024, 0], [256 * 1024, 0], [16 * 1024, 5]];
const table: string[][] = [];
const rows: SummaryRow[] = [];
try {
  for (const [bytes, latency] of CASES) {
    const top = buildClosure(bytes);
    const times: Record<number, number[]> = { 1: [], 8: [] };
    await timePush(top, 8, latency); // warm-up: page cache, Bun's compile cache
    for (let i = 0; i < rounds; i++) {
      for (const j of [1, 8]) times[j]!.push(await timePush(top, j, latency));
    }
    const t1 = median(times[1]!);
    const t8 = median(times[8]!);
    const kib = `${bytes / 1024} KiB${latency ? `, +${latency} ms per request` : ""}`;
    table.push([kib, `${t1.toFixed(2)} s`, `${t8.toFixed(2)} s`, `${(t1 / t8).toFixed(2)}x`,
      times[1]!.map((t) => t.toFixed(2)).join(" "), times[8]!.map((t) => t.toFixed(2)).join(" ")]);
    rows.push({
      bench: "push", metric: `50 paths of ${kib}: -j 8 vs -j 1`, garret: `${t8.toFixed(2)} s`, reference: `${t1.toFixed(2)} s`,
      ratio: `${(t1 / t8).toFixed(2)}x faster`, goal: ">= 2x faster", ok: t1 / t8 >= 2,
    });
  }
} finally {
  await stopAll();
}
printTable(`garret push of ${PATHS} paths, whole command wall time, median of ${rounds} runs, fresh server per run`,
  ["paths", "-j 1", "-j 8", "speedup", "-j 1 runs", "-j 8 runs"], table,
  ["goal: -j 8 at least 2x faster than -j 1", `${cpus().length} CPUs; the server ingests on one event loop, so its CPU bounds what -j can overlap`]);
writeSummary(flags, rows);
