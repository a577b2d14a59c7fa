/**
 * Ingest benchmark: one large NAR through PUT /_api/v1/upload-path over loopback (NAR hash and
 * structure check + FastCDC + per-chunk sha256 + zstd + pack writes + metadata commit), next to
 * `nix copy --to file://DIR?compression=zstd` of the same store path, timed in the same run.
 *
 *   bun scripts/bench/ingest.ts [--quick | --full]
 *
 * Sizes: 256 MiB and 1 GiB NARs (--quick: 64 MiB and 256 MiB; --full adds 4 GiB). Each store path
 * is built once by nix-build (input-addressed, so later runs reuse it): half /dev/urandom, half a
 * hex dump of random bytes (compressible about 1.9x). The NAR is streamed from `nix-store --dump`
 * into the request body; nothing holds a whole NAR in memory, here or in the server.
 *
 * Garret and nix copy run alternately, best of 2 rounds (1 for 4 GiB); each garret round gets a
 * fresh server and data dir. Server memory: VmRSS polled every 10 ms and VmHWM
 * read at the end (the larger of the two is the peak); it should stay flat as the NAR grows.
 * MiB/s is NAR bytes (2^20) per second of wall time, from spawning nix-store --dump to the answer.
 */
import {
  GiB, MiB, RssPoller, createCache, dirBytes, dumpNar, fmtMiB, fmtSec, fmtSize, main, mintToken, nixBuild,
  NIX_OPTS, note, parseFlags, pathInfo, printTable, procStatusBytes, ratio, removeDir, requireNix, section,
  SH_PRELUDE, startGarret, mixedDataScript, tempDir, timeOk, uploadPath, writeSummary, type PathInfo, type SummaryRow,
} from "./common.ts";

const RSS_GOAL = 256 * MiB;
const ROUNDS = 2;

interface Result {
  size: number;
  nar: PathInfo;
  dumpSeconds: number;
  garretSeconds: number;
  garretStored: number;
  garretKind: string;
  rssIdle: number;
  rssPeak: number;
  nixSeconds: number;
  nixStored: number;
}

function buildPath(bytes: number): PathInfo {
  const mib = Math.round(bytes / MiB);
  const expr = `let ${SH_PRELUDE} in sh {
    name = "garret-bench-ingest-${mib}m-v1";
    script = "/bin/mkdir $out; ${mixedDataScript("$out/random", "$out/text", bytes)}";
  }`;
  const t = performance.now();
  const [path] = nixBuild(expr, "ingest");
  const info = pathInfo([path!])[0]!;
  note(`store path ${info.path} (NAR ${fmtSize(info.narSize)}), ready in ${fmtSec((performance.now() - t) / 1000)}`);
  return info;
}

/** Reads the whole `nix-store --dump` stream in this process and drops it: the source's speed. */
async function timeDump(p: PathInfo): Promise<number> {
  const t = performance.now();
  const nar = dumpNar(p.path);
  let n = 0;
  for await (const buf of nar.stream) n += buf.length;
  await nar.done;
  if (n !== p.narSize) throw new Error(`nix-store --dump gave ${n} bytes, expected ${p.narSize}`);
  return (performance.now() - t) / 1000;
}

async function timeGarret(p: PathInfo): Promise<Pick<Result, "garretSeconds" | "garretStored" | "garretKind" | "rssIdle" | "rssPeak">> {
  const server = await startGarret();
  try {
    const token = mintToken(server.dataDir);
    await createCache(server.url, token, "ingest");
    await Bun.sleep(200);
    const rssIdle = procStatusBytes(server.pid, "VmRSS");
    const poller = new RssPoller(server.pid);
    const t = performance.now();
    const answer = await uploadPath(server.url, token, "ingest", p);
    const garretSeconds = (performance.now() - t) / 1000;
    const rssPeak = Math.max(poller.stop(), procStatusBytes(server.pid, "VmHWM"));
    return { garretSeconds, garretStored: dirBytes(`${server.dataDir}/storage`), garretKind: answer.kind, rssIdle, rssPeak };
  } finally {
    await server.stop();
    removeDir(server.dataDir);
  }
}

function timeNixCopy(p: PathInfo): { nixSeconds: number; nixStored: number } {
  const dir = tempDir("garret-bench-nixcopy-");
  try {
    const nixSeconds = timeOk(["nix", "--extra-experimental-features", "nix-command", "copy", ...NIX_OPTS,
      "--to", `file://${dir}?compression=zstd`, p.path]);
    return { nixSeconds, nixStored: dirBytes(dir) };
  } finally {
    removeDir(dir);
  }
}

const mibps = (bytes: number, s: number): string => `${(bytes / MiB / s).toFixed(1)} MiB/s`;

await main(async () => {
  const flags = parseFlags();
  requireNix();
  const sizes = flags.quick ? [64 * MiB, 256 * MiB] : [256 * MiB, GiB, ...(flags.full ? [4 * GiB] : [])];
  section(`ingest: upload-path vs nix copy file:// (${sizes.map(fmtSize).join(", ")})`);

  const benchRss = new RssPoller(process.pid, 50);
  const results: Result[] = [];
  for (const size of sizes) {
    const nar = buildPath(size);
    const dumpSeconds = await timeDump(nar);
    note(`nix-store --dump read in ${fmtSec(dumpSeconds)}; uploading to garret`);
    // Best of ROUNDS, alternating the two, so a hiccup of the machine does not decide the ratio.
    const rounds = size > GiB ? 1 : ROUNDS;
    let g: Awaited<ReturnType<typeof timeGarret>> | null = null;
    let n: ReturnType<typeof timeNixCopy> | null = null;
    for (let round = 1; round <= rounds; round++) {
      const gr = await timeGarret(nar);
      note(`round ${round}/${rounds}: garret ${fmtSec(gr.garretSeconds)} (${gr.garretKind}), peak RSS ${fmtMiB(gr.rssPeak)}`);
      const nr = timeNixCopy(nar);
      note(`round ${round}/${rounds}: nix copy ${fmtSec(nr.nixSeconds)}`);
      const peak = Math.max(gr.rssPeak, g?.rssPeak ?? 0);
      if (!g || gr.garretSeconds < g.garretSeconds) g = gr;
      g.rssPeak = peak;
      if (!n || nr.nixSeconds < n.nixSeconds) n = nr;
    }
    results.push({ size, nar, dumpSeconds, ...g!, ...n! });
  }
  const benchPeak = benchRss.stop();

  const rows: string[][] = [];
  for (const r of results) {
    const s = r.nar.narSize;
    rows.push([`${fmtSize(s)} NAR`, "garret upload-path", fmtSec(r.garretSeconds), mibps(s, r.garretSeconds),
      fmtSize(r.garretStored), ratio(r.nixSeconds, r.garretSeconds)]);
    rows.push(["", "nix copy file:// zstd", fmtSec(r.nixSeconds), mibps(s, r.nixSeconds), fmtSize(r.nixStored), "1.00x"]);
    rows.push(["", "nix-store --dump only", fmtSec(r.dumpSeconds), mibps(s, r.dumpSeconds), "-", ratio(r.nixSeconds, r.dumpSeconds)]);
  }
  printTable(`Ingest throughput (wall time, loopback, best of ${ROUNDS} rounds up to 1 GiB)`, ["input", "tool", "time", "speed", "stored", "speed vs nix copy"], rows, [
    "speed = NAR bytes / wall time; stored = bytes on disk afterwards (garret: storage/ packs; nix: the file:// dir).",
    "\"nix-store --dump only\" is the source alone, read and dropped by the bench: the ceiling for any client.",
  ]);

  printTable("Server memory during one upload", ["input", "RSS idle", "peak RSS", "peak - idle", `goal <= ${fmtMiB(RSS_GOAL, 0)}`],
    results.map((r) => [`${fmtSize(r.nar.narSize)} NAR`, fmtMiB(r.rssIdle), fmtMiB(r.rssPeak), fmtMiB(r.rssPeak - r.rssIdle),
      r.rssPeak <= RSS_GOAL ? "ok" : "MISSED"]),
    [`peak = max(VmRSS polled every 10 ms, VmHWM) of the server process, over all rounds;`,
      `the bench process itself peaked at ${fmtMiB(benchPeak)}.`]);

  const last = results[results.length - 1]!;
  const first = results[0]!;
  const lastSpeed = last.nar.narSize / MiB / last.garretSeconds;
  const nixSpeed = last.nar.narSize / MiB / last.nixSeconds;
  const summary: SummaryRow[] = [{
    bench: "ingest", metric: `${fmtSize(last.nar.narSize)} NAR ingest speed`,
    garret: `${lastSpeed.toFixed(1)} MiB/s`, reference: `${nixSpeed.toFixed(1)} MiB/s (nix copy)`,
    ratio: ratio(lastSpeed, nixSpeed), goal: ">= 1.00x", ok: lastSpeed >= nixSpeed,
  }];
  for (const r of results) {
    summary.push({
      bench: "ingest", metric: `server peak RSS, ${fmtSize(r.nar.narSize)} NAR`, garret: fmtMiB(r.rssPeak),
      reference: "-", ratio: "-", goal: `<= ${fmtMiB(RSS_GOAL, 0)}`, ok: r.rssPeak <= RSS_GOAL,
    });
  }
  summary.push({
    bench: "ingest", metric: `peak RSS growth ${fmtSize(first.nar.narSize)} -> ${fmtSize(last.nar.narSize)}`,
    garret: fmtMiB(last.rssPeak - first.rssPeak), reference: "-", ratio: "-", goal: "flat", ok: null,
  });
  writeSummary(flags, summary);
});
