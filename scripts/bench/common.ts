/**
 * Shared helpers of the benches: flags, commands, Nix builds, a garret server on a free port,
 * RSS polling, tables and the summary rows that run.ts collects.
 *
 * Every bench runs on its own too: `bun scripts/bench/<name>.ts [--quick|--full]`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { prepend } from "../../src/client/api.ts";

export const REPO = resolve(import.meta.dir, "../..");
export const BUN = process.execPath;
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Options that make a root Nix without daemon work here (same as the tests use). */
export const NIX_OPTS = [
  "--option", "build-users-group", "",
  "--option", "sandbox", "false",
  "--option", "narinfo-cache-negative-ttl", "0",
  "--option", "narinfo-cache-positive-ttl", "0",
];

// ---------------------------------------------------------------------------------------------
// flags and summary

export interface Flags {
  quick: boolean;
  full: boolean;
  /** run.ts passes a file where the bench writes its summary rows as JSON. */
  summary?: string;
}

export function parseFlags(argv = process.argv.slice(2)): Flags {
  const f: Flags = { quick: false, full: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") f.quick = true;
    else if (a === "--full") f.full = true;
    else if (a === "--summary") f.summary = argv[++i];
    else throw new Error(`unknown argument ${a}; usage: [--quick | --full] [--summary FILE]`);
  }
  if (f.quick && f.full) throw new Error("--quick and --full exclude each other");
  return f;
}

/** One line of run.ts's final table. `ratio` is garret / reference when both are numbers. */
export interface SummaryRow {
  bench: string;
  metric: string;
  garret: string;
  reference: string;
  ratio: string;
  goal: string;
  /** true met, false missed, null no goal or not measured. */
  ok: boolean | null;
}

export function writeSummary(flags: Flags, rows: SummaryRow[]): void {
  if (flags.summary) writeFileSync(flags.summary, JSON.stringify(rows));
}

// ---------------------------------------------------------------------------------------------
// formatting

export const fmtMiB = (bytes: number, digits = 1): string => `${(bytes / MiB).toFixed(digits)} MiB`;
export const fmtSize = (bytes: number): string =>
  bytes >= GiB ? `${(bytes / GiB).toFixed(2)} GiB` : bytes >= MiB ? fmtMiB(bytes) : `${(bytes / KiB).toFixed(1)} KiB`;
export const fmtSec = (s: number): string => `${s.toFixed(2)} s`;
export const ratio = (a: number, b: number): string => (b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : "-");

/**
 * Prints an aligned table. `align` has one letter per column, l or r; by default the first column
 * is left-aligned and the others right-aligned.
 */
export function printTable(title: string, header: string[], rows: string[][], notes: string[] = [], align?: string): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const left = (i: number): boolean => (align ? align[i] === "l" : i === 0);
  const line = (cells: string[]) =>
    cells.map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("   ").trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("   ");
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(rule);
  for (const r of rows) console.log(line(r));
  for (const n of notes) console.log(`  ${n}`);
}

/** A bench's heading; with `checkBusy` it also warns when other processes keep the CPUs busy. */
export function section(name: string, checkBusy = true): void {
  console.log(`\n=== ${name} ${"=".repeat(Math.max(3, 70 - name.length))}`);
  if (checkBusy) warnIfBusy();
}

function cpuTimes(): { idle: number; total: number } | null {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3]! + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return null;
  }
}

/** Share of all CPUs busy over the next `ms` (null where /proc/stat is missing). */
export function cpuBusy(ms = 500): number | null {
  const a = cpuTimes();
  Bun.sleepSync(ms);
  const b = cpuTimes();
  if (!a || !b || b.total === a.total) return null;
  return 1 - (b.idle - a.idle) / (b.total - a.total);
}

/** Other work on the machine skews every figure: say so where it happens. */
export function warnIfBusy(): void {
  const busy = cpuBusy();
  if (busy !== null && busy > 0.2) {
    note(`WARNING: the CPUs are ${(busy * 100).toFixed(0)}% busy before this bench starts: other processes compete, figures are unreliable`);
  }
}

export function note(msg: string): void {
  console.log(`  .. ${msg}`);
}

// ---------------------------------------------------------------------------------------------
// commands

export function run(cmd: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    env: { ...process.env, ...opts.env }, cwd: opts.cwd, encoding: "utf8", maxBuffer: 256 * MiB,
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? (r.error ? String(r.error) : "") };
}

export function runOk(cmd: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): string {
  const r = run(cmd, opts);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Wall time of a command in seconds; throws when it fails. */
export function timeOk(cmd: string[], opts: { env?: Record<string, string> } = {}): number {
  const t = performance.now();
  runOk(cmd, opts);
  return (performance.now() - t) / 1000;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

let aptUpdated = false;

/**
 * Makes sure `bin` is on PATH, installing the first Debian package of `pkgs` that installs
 * (benches run as root). Returns false (and prints why) when apt cannot provide it.
 */
export function ensureTool(bin: string, pkgs: string[]): boolean {
  if (Bun.which(bin)) return true;
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  if (!aptUpdated) {
    note(`${bin} is missing: apt-get update`);
    const u = run(["apt-get", "update", "-qq"], { env });
    if (u.code !== 0) note(`apt-get update failed (${u.code}): ${u.stderr.trim().split("\n").pop() ?? ""}`);
    aptUpdated = true;
  }
  for (const pkg of pkgs) {
    note(`apt-get install -y ${pkg}`);
    const r = run(["apt-get", "install", "-y", "-qq", pkg], { env });
    if (r.code === 0 && Bun.which(bin)) return true;
    note(`apt-get install ${pkg} failed (${r.code}): ${r.stderr.trim().split("\n").pop() ?? ""}`);
  }
  return false;
}

export function requireNix(): void {
  for (const bin of ["nix", "nix-store", "nix-build"]) {
    if (!Bun.which(bin)) throw new Error(`the benches need Nix (${bin} not on PATH); see README "Tests"`);
  }
}

/** Apparent size in bytes of all files under `path` (0 when missing). */
export function dirBytes(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const e of readdirSync(path, { withFileTypes: true })) n += dirBytes(join(path, e.name));
  return n;
}

/** Number of files under `path` whose name ends with `suffix`. */
export function countFiles(path: string, suffix: string): number {
  if (!existsSync(path)) return 0;
  let n = 0;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(path, e.name), suffix);
    else if (e.name.endsWith(suffix)) n++;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Nix

/**
 * Builds a local expression (a list or one derivation) and returns the output paths. Outputs are
 * input-addressed: a second run of the same expression finds them valid and builds nothing.
 */
export function nixBuild(expr: string, tag: string): string[] {
  const dir = tempDir(`garret-bench-expr-${tag}-`);
  try {
    writeFileSync(join(dir, "default.nix"), expr);
    // No substituters: this machine has no network, and asking cache.nixos.org about every new
    // output waited for its timeout (most of the push bench's two minutes went there).
    const out = runOk(["nix-build", ...NIX_OPTS, "--option", "substituters", "", "--max-jobs", "4", "--no-out-link", join(dir, "default.nix")]);
    return out.trim().split("\n").filter(Boolean);
  } finally {
    removeDir(dir);
  }
}

/**
 * `paths - 1` leaves of about `bytes` of text (builtins.toFile) and a top referencing them all.
 * `tag` makes the contents unique, so that no upload is answered by deduplication against an
 * earlier run. Returns the top.
 */
export function buildWideClosure(paths: number, bytes: number, tag: string): string {
  const expr = `
    let
      pad = i: builtins.concatStringsSep "" (builtins.genList (j: "garret push bench ${tag} leaf \${toString i} line \${toString j}\\n") (${bytes} / 40));
      leaves = builtins.genList (i: builtins.toFile "garret-bench-push-${tag}-leaf-\${toString i}" (pad i)) ${paths - 1};
    in derivation {
      name = "garret-bench-push-${tag}-top"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "echo \${builtins.concatStringsSep " " leaves} > $out" ];
    }`;
  return nixBuild(expr, `push-${tag}`)[0]!;
}

/** The `sh` helper for expressions: a derivation run by /bin/sh (no nixpkgs needed). */
export const SH_PRELUDE = `sh = args: derivation {
    name = args.name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" args.script ];
  };`;

/**
 * Shell that writes `bytes` bytes of mixed data: the first half random (to `randomFile`), the
 * second half a hex dump of random bytes (to `textFile`; compresses about 1.9x with zstd, like
 * typical text and binaries). The whole compresses about 1.3x and every chunk of it is unique.
 * With the same file for both, the text is appended after the random half.
 */
export function mixedDataScript(randomFile: string, textFile: string, bytes: number): string {
  const random = Math.floor(bytes / 2);
  const text = bytes - random;
  // od -tx8 -w32 prints 69 characters per 32 input bytes.
  const input = Math.ceil((text * 32) / 69) + 64;
  const redirect = randomFile === textFile ? ">>" : ">";
  return `/usr/bin/head -c ${random} /dev/urandom > ${randomFile}; `
    + `/usr/bin/head -c ${input} /dev/urandom | /usr/bin/od -An -tx8 -w32 | /usr/bin/head -c ${text} ${redirect} ${textFile}`;
}

export interface PathInfo {
  path: string;
  narHashHex: string;
  narSize: number;
  references: string[];
  deriver: string | null;
}

export function pathInfo(paths: string[], recursive = false): PathInfo[] {
  const out = runOk(["nix", "--extra-experimental-features", "nix-command", "path-info", "--json",
    ...(recursive ? ["--recursive"] : []), ...paths]);
  const list = JSON.parse(out) as { path: string; narHash: string; narSize: number; references?: string[]; deriver?: string }[];
  return list.map((p) => ({
    path: p.path,
    narHashHex: sriToHex(p.narHash),
    narSize: p.narSize,
    references: p.references ?? [],
    deriver: p.deriver ?? null,
  }));
}

function sriToHex(h: string): string {
  if (h.startsWith("sha256-")) return Buffer.from(h.slice(7), "base64").toString("hex");
  if (/^sha256:[0-9a-f]{64}$/.test(h)) return h.slice(7);
  throw new Error(`unexpected narHash form ${h} from nix path-info`);
}

export const storePathHash = (p: string): string => p.slice(p.lastIndexOf("/") + 1, p.lastIndexOf("/") + 33);

/** Runs `nix-store --dump PATH` and returns its stdout stream (never buffered whole). */
export function dumpNar(path: string): { stream: ReadableStream<Uint8Array>; done: Promise<void> } {
  const proc = Bun.spawn(["nix-store", "--dump", path], { stdout: "pipe", stderr: "pipe" });
  const done = (async () => {
    const code = await proc.exited;
    if (code !== 0) throw new Error(`nix-store --dump ${path} failed (${code}): ${await new Response(proc.stderr).text()}`);
  })();
  done.catch(() => {});
  return { stream: proc.stdout, done };
}

// ---------------------------------------------------------------------------------------------
// garret

/**
 * The executable the benches run: what users run, the single binary `npm run build` makes. It is
 * built once per bench process into a temp dir (run.ts builds it once for all benches and passes
 * it on in GARRET_BIN). From source each client command would spend ~40 ms transpiling modules,
 * a cost the shipped binary does not have.
 */
function garretBinary(): string {
  if (!process.env.GARRET_BIN) {
    const out = join(tempDir("garret-bench-bin-"), "garret");
    runOk([BUN, join(REPO, "scripts/build.ts"), "--outfile", out]);
    process.env.GARRET_BIN = out;
  }
  return process.env.GARRET_BIN;
}

export function garretCmd(...args: string[]): string[] {
  return [garretBinary(), ...args];
}

export interface Garret {
  url: string;
  pid: number;
  dataDir: string;
  proc: Subprocess;
  log(): string;
  stop(): Promise<void>;
}

const running = new Set<{ stop(): Promise<void> | void }>();

/** Stops whatever the bench started that is still running (servers, nginx). */
export async function stopAll(): Promise<void> {
  for (const s of [...running]) await s.stop();
}

/**
 * Starts `garret serve` on a free loopback port (with a fresh data dir unless given); the log goes to a file, so
 * the per-request log lines cost what they cost in production, and never block on a full pipe.
 */
export async function startGarret(dataDirArg?: string): Promise<Garret> {
  // A data dir made here is deleted by stop(), also when a bench fails half-way.
  const dataDir = dataDirArg ?? tempDir("garret-bench-data-");
  const logDir = tempDir("garret-bench-log-");
  const logPath = join(logDir, "server.log");
  const proc = Bun.spawn(garretCmd("serve", "--listen", "127.0.0.1:0", "--data", dataDir), {
    // The environment as it is now (a bench may have set GARRET_DATABASE_URL since it started).
    stdout: Bun.file(logPath), stderr: Bun.file(logPath), stdin: "ignore", env: { ...process.env },
  });
  const log = (): string => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
  const deadline = Date.now() + 20000;
  let url: string | null = null;
  while (!url) {
    const m = /listening on (http:\/\/[^\s]+)/.exec(log());
    if (m) url = m[1]!;
    else if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`garret did not start:\n${log()}`);
    else await Bun.sleep(20);
  }
  const g: Garret = {
    url, pid: proc.pid, dataDir, proc, log,
    async stop() {
      running.delete(g);
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
        await proc.exited;
        clearTimeout(t);
      }
      removeDir(logDir);
      if (!dataDirArg) removeDir(dataDir);
    },
  };
  running.add(g);
  return g;
}

export function mintToken(dataDir: string): string {
  return runOk(garretCmd("token", "create", "--data", dataDir, "--sub", "bench", "--validity", "1d",
    "--pull", "*", "--push", "*", "--create-cache", "*")).trim();
}

/** A cache for the bench: public unless `isPublic` is false (the dedup timing part needs private ones). */
export async function createCache(url: string, token: string, name: string, isPublic = true): Promise<void> {
  const res = await fetch(`${url}/_api/v1/cache-config/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: isPublic }),
  });
  if (!res.ok) throw new Error(`creating cache ${name}: ${res.status} ${await res.text()}`);
}

export interface UploadAnswer {
  kind: string;
  file_size: number;
  frac_deduplicated: number;
}

/**
 * Streams the NAR of `p` from nix-store --dump into PUT /_api/v1/upload-path. The metadata goes in
 * the X-Attic-Nar-Info header, or with `preamble` as a JSON preamble at the start of the body (what
 * Attic's client does for large metadata, e.g. a path with hundreds of references).
 */
export async function uploadPath(url: string, token: string, cache: string, p: PathInfo, opts: { preamble?: boolean } = {}): Promise<UploadAnswer> {
  const nar = dumpNar(p.path);
  const info = JSON.stringify({
    cache,
    store_path_hash: storePathHash(p.path),
    store_path: p.path,
    references: p.references,
    system: null,
    deriver: p.deriver,
    sigs: [],
    ca: null,
    nar_hash: `sha256:${p.narHashHex}`,
    nar_size: p.narSize,
  });
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, "content-type": "application/x-nix-nar" };
  let body = nar.stream;
  if (opts.preamble) {
    const head = new TextEncoder().encode(info);
    headers["x-attic-nar-info-preamble-size"] = String(head.length);
    body = prepend(head, nar.stream);
  } else {
    headers["x-attic-nar-info"] = info;
  }
  const res = await fetch(`${url}/_api/v1/upload-path`, {
    method: "PUT", headers, body,
    duplex: "half", // a streamed request body
  } as RequestInit);
  const text = await res.text();
  await nar.done;
  if (!res.ok) throw new Error(`upload of ${p.path} failed: ${res.status} ${text}`);
  return JSON.parse(text) as UploadAnswer;
}

// ---------------------------------------------------------------------------------------------
// memory

/** CPU seconds (user + system) a live process has used so far, from /proc/<pid>/stat. */
export function procCpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime and stime, in clock ticks of 1/100 s
}

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM), or NaN when unreadable. */
export function procStatusBytes(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * KiB : NaN;
  } catch {
    return NaN;
  }
}

/** Polls VmRSS of `pid` every `everyMs` and keeps the maximum. */
export class RssPoller {
  max = 0;
  private timer: ReturnType<typeof setInterval>;

  constructor(private readonly pid: number, everyMs = 10) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): void {
    const v = procStatusBytes(this.pid, "VmRSS");
    if (v > this.max) this.max = v;
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.max;
  }
}

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** Runs `body`, stopping what it started on the way out, and exits non-zero on failure. */
export async function main(body: () => Promise<void>): Promise<void> {
  let failed = false;
  try {
    await body();
  } catch (err) {
    failed = true;
    console.error(`\nbench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    await stopAll();
  }
  process.exit(failed ? 1 : 0);
}

export function registerStoppable(s: { stop(): Promise<void> | void }): void {
  running.add(s);
}

export function unregisterStoppable(s: { stop(): Promise<void> | void }): void {
  running.delete(s);
}

/** The trivial PUT server (see static-put-server.ts) on a free port, stopped with the others. */
export async function startStaticServer(): Promise<{ url: string; pid: number }> {
  const logPath = join(tempDir("garret-bench-static-"), "log");
  const proc = Bun.spawn([BUN, join(import.meta.dir, "static-put-server.ts")], { stdout: Bun.file(logPath), stderr: Bun.file(logPath) });
  const stoppable = {
    async stop() {
      unregisterStoppable(stoppable);
      proc.kill();
      await proc.exited;
    },
  };
  registerStoppable(stoppable);
  for (;;) {
    const m = existsSync(logPath) ? /listening on (\S+)/.exec(readFileSync(logPath, "utf8")) : null;
    if (m) return { url: m[1]!, pid: proc.pid };
    if (proc.exitCode !== null) throw new Error(`static-put-server did not start: ${readFileSync(logPath, "utf8")}`);
    await Bun.sleep(20);
  }
}

/** A NAR string field: u64 length, bytes, zero padding to 8. */
function narString(parts: Uint8Array[], bytes: Uint8Array | string): void {
  const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(b.length), true);
  parts.push(len, b, new Uint8Array((8 - (b.length % 8)) % 8));
}

/** The NAR of one regular file, as Nix writes it: the benches' synthetic store paths. */
export function fileNar(contents: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const s of ["nix-archive-1", "(", "type", "regular", "contents"]) narString(parts, s);
  narString(parts, contents);
  narString(parts, ")");
  return Buffer.concat(parts);
}

const STORE_B32 = "0123456789abcdfghijklmnpqrsvwxyz";
/** A random store path hash part (32 nix-base32 characters). */
export const randomStoreHash = (): string => Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => STORE_B32[b % 32]).join("");

/** The median (the mean of the middle two for an even count). */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
