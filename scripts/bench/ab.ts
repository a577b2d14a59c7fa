/**
 * A/B of two garret builds on one push workload, for changes smaller than the noise between
 * bench runs: pushes of fresh 50-path closures alternate between a server of build A and one of
 * build B (the same client for both), and the medians are compared. On a 2-CPU machine whose
 * speed drifts, two runs of the push bench differ by 10%; A against itself here differed by about
 * 2% with the default 15 rounds (by up to 8% with 7).
 *
 *   bun scripts/bench/ab.ts A_BINARY B_BINARY [--client BINARY] [-j N] [--rounds R] [--kib K]
 *
 * Binaries are `npm run build -- --outfile ...` outputs (or scripts that exec one with an
 * environment). Not part of `npm run bench`: it compares builds, not garret with a reference.
 */
import { parseArgs } from "node:util";
import { buildWideClosure, createCache, removeDir, requireNix, run, startGarret, stopAll, tempDir, type Garret } from "./common.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2), allowPositionals: true,
  options: { client: { type: "string" }, j: { type: "string", short: "j" }, rounds: { type: "string" }, kib: { type: "string" } },
});
const [binA, binB] = positionals;
if (!binA || !binB) {
  console.error("usage: bun scripts/bench/ab.ts A_BINARY B_BINARY [--client BINARY] [-j N] [--rounds R] [--kib K]");
  process.exit(2);
}
const client = values.client ?? binA;
const jobs = values.j ?? "8";
const rounds = Number(values.rounds ?? 15);
const bytes = Number(values.kib ?? 16) * 1024;
requireNix();

/** A server of the given build (startGarret runs $GARRET_BIN) with a token that may do anything. */
async function serverOf(bin: string): Promise<{ g: Garret; token: string }> {
  process.env.GARRET_BIN = bin;
  const g = await startGarret();
  const token = run([bin, "token", "create", "--data", g.dataDir, "--sub", "ab", "--validity", "1d",
    "--pull", "*", "--push", "*", "--create-cache", "*"]).stdout.trim();
  return { g, token };
}

const runId = Date.now().toString(36);
const tops = Array.from({ length: 2 * rounds + 2 }, (_, i) => buildWideClosure(50, bytes, `ab-${runId}-${i}`));
const env = { XDG_CONFIG_HOME: tempDir("garret-bench-ab-") };
const times: [number[], number[]] = [[], []];
try {
  const servers = [await serverOf(binA), await serverOf(binB)];
  for (const [i, s] of servers.entries()) {
    run([client, "login", `s${i}`, s.g.url, s.token], { env });
    await createCache(s.g.url, s.token, "warmup");
    run([client, "push", `s${i}:warmup`, "-j", "8", "--json", tops.pop()!], { env });
  }
  for (let r = 0; r < rounds; r++) {
    // A then B, B then A: drift in the machine's speed hits both alike.
    for (const i of r % 2 ? [1, 0] : [0, 1]) {
      const s = servers[i]!;
      const cache = `r${r}`;
      await createCache(s.g.url, s.token, cache);
      const t = performance.now();
      const p = run([client, "push", `s${i}:${cache}`, "-j", jobs, "--json", "--compression", "none", tops[2 * r + i]!], { env });
      if (p.code !== 0) throw new Error(`push to build ${"AB"[i]} failed: ${p.stderr}`);
      times[i]!.push(performance.now() - t);
    }
  }
} finally {
  await stopAll();
  removeDir(env.XDG_CONFIG_HOME);
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const [a, b] = [median(times[0]), median(times[1])];
console.log(`push of 50 paths of ${bytes / 1024} KiB, -j ${jobs}, medians of ${rounds}: A ${a.toFixed(1)} ms, B ${b.toFixed(1)} ms, B/A ${(b / a).toFixed(3)}`);
