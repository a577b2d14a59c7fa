/**
 * `npm run bench`: runs every bench in sequence, each in its own process, and ends with one
 * summary table (garret's figure, the reference's, the ratio and the goal).
 *
 *   bun scripts/bench/run.ts [--quick | --full] [chunker] [ingest] [dedup] [serve] [push] [s3] [dashboard] [replicas] [copy] [requests]
 *
 *   --quick   smaller inputs and shorter runs (ingest 64 MiB + 256 MiB, dedup 32 MiB, 2 s load runs)
 *   --full    adds the 4 GiB NAR to the ingest bench
 *   names     run only these benches
 *
 * They run the single binary (built once into a temp dir, or $GARRET_BIN). The benches build their inputs with nix-build (kept in /nix/store, so later runs are faster),
 * start their own garret servers (and nginx for serve, installing nginx-light and wrk with apt-get
 * when missing) and stop them at the end. They need Nix and run as root. On 2 cores: about 2
 * minutes (--quick: 45 s), plus about 30 s the first time to build the inputs; --full adds about
 * 2 minutes (and 45 s to build the 4 GiB input once). Other work on the machine skews the
 * figures: each bench warns when the CPUs were busy before it started.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { BUN, REPO, cpuBusy, printTable, run, section, type SummaryRow } from "./common.ts";

// push goes first: its -j 8 runs need both CPUs at once, and right after a bench that kept both
// busy for a minute (serve, ingest) this machine ran them up to 30% slower for a while, -j 1 hardly
// (after 45 s of load on both CPUs: the first -j 8 pushes took 43-52 ms, the later ones 35-38 ms).
const BENCHES = ["push", "chunker", "ingest", "dedup", "serve", "s3", "dashboard", "replicas", "copy", "requests"] as const;
type Bench = (typeof BENCHES)[number];

/** Real-NAR input of the chunker bench: a fixed tree of tens of MB (not the largest store path, which may be the 4 GiB ingest input). */
const CHUNKER_NAR = ["/usr/lib/python3.11", "/usr/lib/python3", "/usr/lib/postgresql", "/usr/lib/gcc"];

function parse(argv: string[]): { quick: boolean; full: boolean; only: Bench[] } {
  const out = { quick: false, full: false, only: [] as Bench[] };
  for (const a of argv) {
    if (a === "--quick") out.quick = true;
    else if (a === "--full") out.full = true;
    else if ((BENCHES as readonly string[]).includes(a)) out.only.push(a as Bench);
    else {
      console.error(`unknown argument ${a}; usage: run.ts [--quick | --full] [${BENCHES.join("] [")}]`);
      process.exit(2);
    }
  }
  if (out.quick && out.full) {
    console.error("--quick and --full exclude each other");
    process.exit(2);
  }
  return out;
}

/** Runs the chunker bench, echoing its table, and turns its rows into summary rows. */
async function runChunker(quick: boolean): Promise<{ code: number; rows: SummaryRow[] }> {
  const nar = CHUNKER_NAR.find((p) => existsSync(p));
  const args = ["--gib", quick ? "0.25" : "1", ...(nar ? ["--nar", nar] : [])];
  section("chunker: FastCDC throughput (scripts/bench/chunker.ts)");
  const proc = Bun.spawn([BUN, join(import.meta.dir, "chunker.ts"), ...args], { stdout: "pipe", stderr: "inherit" });
  let out = "";
  const decoder = new TextDecoder();
  for await (const buf of proc.stdout) {
    const text = decoder.decode(buf, { stream: true });
    out += text;
    process.stdout.write(text);
  }
  const code = await proc.exited;
  const rows: SummaryRow[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s*(?:chunker \([^)]*\))?\s+(random .*?|NAR .*?)\s{2,}(\d+)\s+(\d+)\s+([\d.]+)\s*$/.exec(line);
    if (m) rows.push({ bench: "chunker", metric: m[1]!.trim(), garret: `${m[2]} MB/s`, reference: "-", ratio: "-", goal: "-", ok: null });
  }
  return { code, rows };
}

async function runBench(name: Exclude<Bench, "chunker">, flags: string[], summaryFile: string): Promise<{ code: number; rows: SummaryRow[] }> {
  rmSync(summaryFile, { force: true });
  const proc = Bun.spawn([BUN, join(import.meta.dir, `${name}.ts`), ...flags, "--summary", summaryFile], {
    stdout: "inherit", stderr: "inherit", stdin: "ignore",
  });
  const code = await proc.exited;
  const rows = existsSync(summaryFile) ? (JSON.parse(readFileSync(summaryFile, "utf8")) as SummaryRow[]) : [];
  return { code, rows };
}

const firstLine = (cmd: string[]): string => run(cmd).stdout.trim().split("\n")[0] ?? "?";

const args = parse(process.argv.slice(2));
const selected = args.only.length > 0 ? BENCHES.filter((b) => args.only.includes(b)) : [...BENCHES];
const mode = args.quick ? "--quick" : args.full ? "--full" : "default";
const started = performance.now();
console.log(`garret benchmarks (${mode}): ${selected.join(", ")}`);
console.log(`  commit ${firstLine(["git", "-C", REPO, "log", "-1", "--format=%h %s"])}${run(["git", "-C", REPO, "diff", "--quiet", "HEAD", "--", "src"]).code === 0 ? "" : " (src/ has uncommitted changes)"}`);
console.log(`  ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, bun ${Bun.version}, ${firstLine(["nix", "--version"])}`);

const dir = mkdtempSync(join(tmpdir(), "garret-bench-run-"));
// Every bench runs the shipped single binary; build it once here for all of them.
if (!process.env.GARRET_BIN) {
  const bin = join(dir, "garret");
  const built = run([BUN, join(REPO, "scripts/build.ts"), "--outfile", bin]);
  if (built.code !== 0) throw new Error(`npm run build failed:\n${built.stderr}`);
  process.env.GARRET_BIN = bin;
}
const summary: SummaryRow[] = [];
const times: string[][] = [];
let crashed = 0;
const busyBenches: string[] = [];
for (const name of selected) {
  const busy = cpuBusy();
  const t = performance.now();
  const flags = args.quick ? ["--quick"] : args.full ? ["--full"] : [];
  const r = name === "chunker" ? await runChunker(args.quick) : await runBench(name, flags, join(dir, `${name}.json`));
  const seconds = (performance.now() - t) / 1000;
  times.push([name, `${seconds.toFixed(1)} s`, busy === null ? "?" : `${(busy * 100).toFixed(0)} %`, r.code === 0 ? "ok" : `FAILED (exit ${r.code})`]);
  if (busy !== null && busy > 0.2) busyBenches.push(name);
  if (r.code !== 0) {
    crashed++;
    summary.push({ bench: name, metric: "(bench failed, see its output above)", garret: "-", reference: "-", ratio: "-", goal: "-", ok: false });
  }
  summary.push(...r.rows);
}
rmSync(dir, { recursive: true, force: true });

const total = (performance.now() - started) / 1000;
section("summary", false);
printTable("Results", ["bench", "metric", "garret", "reference", "garret/ref", "goal", "status"],
  summary.map((r) => [r.bench, r.metric, r.garret, r.reference, r.ratio, r.goal, r.ok === null ? "" : r.ok ? "ok" : "MISSED"]),
  ["garret/ref: garret's figure over the reference's (for speeds, above 1 means garret is faster; for sizes, below 1 means smaller)."],
  "llrrrll");
const missed = summary.filter((r) => r.ok === false).length;
printTable("Wall time", ["bench", "time", "CPU busy before", "result"], [...times, ["total", `${total.toFixed(1)} s`, "", `${missed} goal(s) missed`]],
  busyBenches.length > 0
    ? [`WARNING: other processes kept the CPUs busy before ${busyBenches.join(", ")}: those figures are unreliable; rerun on an idle machine.`]
    : ["CPU busy before = share of all CPUs used by other processes in the 0.5 s before the bench started."]);
process.exit(crashed > 0 ? 1 : 0);
