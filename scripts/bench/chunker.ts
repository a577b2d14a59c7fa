/**
 * Chunker throughput benchmark.
 *
 *   bun scripts/bench/chunker.ts [--gib N] [--nar FILE_OR_DIR]
 *
 * Rows:
 *  - N GiB (default 1) of random data, generated in 64 MiB blocks that are
 *    refilled with fresh crypto.getRandomValues() output before each block
 *    (memory stays bounded, no block is ever chunked twice). Each block is
 *    fed to one chunker as a single push and to a second chunker in 1 MiB
 *    pushes (the streaming path, with chunks spanning pushes). Only push()
 *    time is measured, not generation.
 *  - a real NAR: FILE if it is a file, else `nix-store --dump` of the given
 *    directory, else of the largest /nix/store path if that is >= 16 MiB, else
 *    of a fallback directory of tens of MB (NAR layout and content are the
 *    same whether or not the tree lives in /nix/store). It is chunked
 *    repeatedly until >= 512 MiB went through, to get a stable time.
 *
 * MB/s is 10^6 bytes per second. Single-threaded, one Chunker per row.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Chunker, DEFAULT_CHUNKING } from "../../src/store/chunker.ts";

const MiB = 1024 * 1024;
const BLOCK = 64 * MiB;
const NAR_FALLBACKS = ["/usr/lib/python3.11", "/usr/lib/python3", "/usr/lib/postgresql", "/usr/lib/gcc"];

interface Row {
  input: string;
  /** Bytes pushed during the timed `seconds`. */
  bytes: number;
  seconds: number;
  /** Chunk count of one chunking of the input, covering `chunkedBytes`. */
  chunks: number;
  chunkedBytes: number;
}

function parseArgs(argv: string[]): { gib: number; nar?: string } {
  const out: { gib: number; nar?: string } = { gib: 1 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--gib") out.gib = Number(argv[++i]);
    else if (argv[i] === "--nar") out.nar = argv[++i];
    else throw new Error(`unknown argument ${argv[i]}; usage: chunker.ts [--gib N] [--nar FILE_OR_DIR]`);
  }
  if (!(out.gib > 0)) throw new Error("--gib must be > 0");
  return out;
}

/** crypto.getRandomValues() is limited to 65536 bytes per call. */
function fillRandom(buf: Uint8Array): void {
  for (let off = 0; off < buf.length; off += 65536) {
    crypto.getRandomValues(buf.subarray(off, Math.min(buf.length, off + 65536)));
  }
}

/** Feeds `data` to `chunker` in `piece`-sized pushes; returns chunk count. */
function feed(chunker: Chunker, data: Uint8Array, piece: number): number {
  let n = 0;
  for (let off = 0; off < data.length; off += piece) n += chunker.push(data.subarray(off, off + piece)).length;
  return n;
}

function benchRandom(gib: number): Row[] {
  const block = new Uint8Array(BLOCK);
  fillRandom(block);
  feed(new Chunker(), block, BLOCK); // JIT warm-up, not measured
  const modes = [
    { name: "64 MiB pushes", piece: BLOCK },
    { name: "1 MiB pushes", piece: MiB },
  ];
  const state = modes.map(() => ({ chunker: new Chunker(), seconds: 0, chunks: 0 }));
  const blocks = Math.round((gib * 1024 * MiB) / BLOCK);
  for (let b = 0; b < blocks; b++) {
    fillRandom(block);
    modes.forEach((m, i) => {
      const s = state[i];
      const t = performance.now();
      s.chunks += feed(s.chunker, block, m.piece);
      if (b === blocks - 1) s.chunks += s.chunker.finish().length;
      s.seconds += (performance.now() - t) / 1000;
    });
  }
  return modes.map((m, i) => ({
    input: `random ${gib} GiB, ${m.name}`,
    bytes: blocks * BLOCK,
    seconds: state[i].seconds,
    chunks: state[i].chunks,
    chunkedBytes: blocks * BLOCK,
  }));
}

function duBytes(path: string): number {
  const r = spawnSync("du", ["-sb", path], { encoding: "utf8" });
  return r.status === 0 ? Number(r.stdout.split("\t")[0]) : 0;
}

/** The directory to dump: the largest store path if big enough, else a fallback. */
function pickNarSource(): string {
  let best = { path: "", size: 0 };
  if (existsSync("/nix/store")) {
    for (const name of readdirSync("/nix/store")) {
      const p = join("/nix/store", name);
      const size = duBytes(p);
      if (size > best.size) best = { path: p, size };
    }
  }
  if (best.size >= 16 * MiB) return best.path;
  const fallback = NAR_FALLBACKS.find((p) => existsSync(p));
  if (!fallback) throw new Error("no NAR source found; pass --nar FILE_OR_DIR");
  return fallback;
}

function loadNar(arg?: string): { name: string; data: Uint8Array } {
  if (arg && statSync(arg).isFile()) return { name: basename(arg), data: readFileSync(arg) };
  const src = arg ?? pickNarSource();
  const dir = mkdtempSync(join(tmpdir(), "garret-bench-"));
  try {
    const file = join(dir, "dump.nar");
    const r = spawnSync("sh", ["-c", 'nix-store --dump "$1" > "$2"', "sh", src, file], { stdio: "inherit" });
    if (r.status !== 0) throw new Error(`nix-store --dump ${src} failed`);
    return { name: `NAR ${basename(src)}`, data: readFileSync(file) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function benchNar(name: string, data: Uint8Array): Row {
  const passOnce = () => {
    const c = new Chunker();
    return c.push(data).length + c.finish().length;
  };
  const chunks = passOnce(); // also the warm-up
  const passes = Math.max(5, Math.ceil((512 * MiB) / data.length));
  const t = performance.now();
  for (let i = 0; i < passes; i++) passOnce();
  const seconds = (performance.now() - t) / 1000;
  const label = `${name} (${(data.length / MiB).toFixed(1)} MiB x${passes})`;
  return { input: label, bytes: data.length * passes, seconds, chunks, chunkedBytes: data.length };
}

function printTable(rows: Row[]): void {
  const { minSize, avgSize, maxSize } = DEFAULT_CHUNKING;
  const k = (n: number) => `${n / 1024}K`;
  const title = `chunker (FastCDC ${k(minSize)}/${k(avgSize)}/${k(maxSize)})`;
  const inputWidth = Math.max(5, ...rows.map((r) => r.input.length));
  const line = (a: string, b: string, c: string, d: string, e: string) =>
    `${a.padEnd(title.length)}   ${b.padEnd(inputWidth)}   ${c.padStart(7)}   ${d.padStart(7)}   ${e.padStart(7)}`;
  console.log(line(title, "input", "MB/s", "chunks", "avg KiB"));
  for (const r of rows) {
    const mbps = r.bytes / r.seconds / 1e6;
    console.log(line("", r.input, mbps.toFixed(0), String(r.chunks), (r.chunkedBytes / r.chunks / 1024).toFixed(1)));
  }
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const rows = benchRandom(args.gib);
  const nar = loadNar(args.nar);
  const narRow = benchNar(nar.name, nar.data);
  printTable([...rows, narRow]);
}

main();
