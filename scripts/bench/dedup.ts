/**
 * Deduplication benchmark: two store paths whose one large file differs by a small insertion near
 * the middle, pushed to one cache through upload-path.
 *
 *   bun scripts/bench/dedup.ts [--quick]
 *
 * Path A holds a 64 MiB file (--quick: 32 MiB), half random and half a hex dump of random bytes.
 * Path B is built from A's file with 17 bytes inserted a little past the middle; B does not
 * reference A at run time. Content-defined chunking should store only the one or two chunks
 * around the edit again, so the second upload is almost entirely deduplicated.
 *
 * Reported: logical bytes (sum of both NAR sizes), stored bytes (what DIR/storage grew by), the
 * second upload's frac_deduplicated, the number of pack files, and for reference the size of a
 * `nix copy --to file://DIR?compression=zstd` of both paths (whole compressed NARs, no dedup).
 * Then whether an upload's duration tells where its NAR already is (dedup-timing.ts).
 */
import {
  MiB, countFiles, createCache, dirBytes, fmtSec, fmtSize, main, mintToken, nixBuild, NIX_OPTS, note,
  parseFlags, pathInfo, printTable, removeDir, requireNix, section, SH_PRELUDE, startGarret,
  mixedDataScript, tempDir, timeOk, uploadPath, writeSummary, type SummaryRow,
} from "./common.ts";
import { dedupTiming } from "./dedup-timing.ts";

const INSERT = "garret-dedup-edit";

await main(async () => {
  const flags = parseFlags();
  requireNix();
  const size = flags.quick ? 32 * MiB : 64 * MiB;
  const mib = size / MiB;
  const at = size / 2 + 12345;
  section(`dedup: two ${fmtSize(size)} files differing by a ${INSERT.length}-byte insertion at offset ${at}`);

  const expr = `let ${SH_PRELUDE}
    a = sh { name = "garret-bench-dedup-a-${mib}m-v1"; script = "/bin/mkdir $out; ${mixedDataScript("$out/data", "$out/data", size)}"; };
    b = sh { name = "garret-bench-dedup-b-${mib}m-v1"; script = "/bin/mkdir $out; { /usr/bin/head -c ${at} \${a}/data; printf ${INSERT}; /usr/bin/tail -c +${at + 1} \${a}/data; } > $out/data"; };
  in [ a b ]`;
  const t0 = performance.now();
  const built = nixBuild(expr, "dedup");
  // nix path-info lists paths sorted by hash: pick A and B by name.
  const infos = pathInfo(built);
  const a = infos.find((p) => p.path.includes("-garret-bench-dedup-a-"));
  const b = infos.find((p) => p.path.includes("-garret-bench-dedup-b-"));
  if (!a || !b) throw new Error(`expected two paths, got ${built.join(" ")}`);
  // NAR strings are padded to 8 bytes: B's NAR is 17 to 24 bytes longer.
  if (b.narSize - a.narSize < INSERT.length || b.narSize - a.narSize > INSERT.length + 7) {
    throw new Error(`B's NAR is ${b.narSize} bytes, A's ${a.narSize}: the insertion did not happen as planned`);
  }
  if (b.references.includes(a.path)) throw new Error("B must not reference A");
  note(`built ${a.path} and ${b.path} in ${fmtSec((performance.now() - t0) / 1000)}`);

  const server = await startGarret();
  let first, second, storedBefore, storedAfterFirst, storedAfter, packs, t1, t2;
  try {
    const token = mintToken(server.dataDir);
    await createCache(server.url, token, "dedup");
    const storage = `${server.dataDir}/storage`;
    storedBefore = dirBytes(storage);
    let t = performance.now();
    first = await uploadPath(server.url, token, "dedup", a);
    t1 = (performance.now() - t) / 1000;
    storedAfterFirst = dirBytes(storage);
    t = performance.now();
    second = await uploadPath(server.url, token, "dedup", b);
    t2 = (performance.now() - t) / 1000;
    storedAfter = dirBytes(storage);
    packs = countFiles(storage, ".pack");
  } finally {
    await server.stop();
    removeDir(server.dataDir);
  }

  const nixDir = tempDir("garret-bench-nixcopy-");
  let nixStored: number;
  try {
    timeOk(["nix", "--extra-experimental-features", "nix-command", "copy", ...NIX_OPTS,
      "--to", `file://${nixDir}?compression=zstd`, a.path, b.path]);
    nixStored = dirBytes(`${nixDir}/nar`);
  } finally {
    removeDir(nixDir);
  }

  const logical = a.narSize + b.narSize;
  const stored = storedAfter - storedBefore;
  const secondStored = storedAfter - storedAfterFirst;
  printTable("Two near-identical paths in one cache", ["measure", "value"], [
    ["logical bytes (sum of NAR sizes)", `${fmtSize(logical)} (${logical} B)`],
    ["stored bytes (growth of DIR/storage)", `${fmtSize(stored)} (${stored} B)`],
    ["  of which the second upload", `${fmtSize(secondStored)} (${secondStored} B)`],
    ["stored / logical", `${((stored / logical) * 100).toFixed(1)} %`],
    ["nix copy file:// zstd of both (no dedup)", `${fmtSize(nixStored)} (${nixStored} B)`],
    ["garret stored / nix copy stored", `${((stored / nixStored) * 100).toFixed(1)} %`],
    ["first upload", `${first.kind}, frac_deduplicated ${first.frac_deduplicated.toFixed(4)}, ${fmtSec(t1)}`],
    ["second upload", `${second.kind}, frac_deduplicated ${second.frac_deduplicated.toFixed(4)}, ${fmtSec(t2)}`],
    ["pack files in storage", String(packs)],
  ], ["stored bytes are file sizes under DIR/storage (packs of zstd-compressed chunks), minus what was there before."], "lr");

  // One or two new chunks of ~64 KiB out of the file is the ideal; 0.98 leaves room for 4 chunks of 128 KiB.
  const summary: SummaryRow[] = [
    {
      bench: "dedup", metric: "2nd upload frac_deduplicated", garret: second.frac_deduplicated.toFixed(4),
      reference: "-", ratio: "-", goal: ">= 0.98", ok: second.frac_deduplicated >= 0.98,
    },
    {
      bench: "dedup", metric: "stored bytes, both paths", garret: fmtSize(stored),
      reference: `${fmtSize(nixStored)} (nix copy)`, ratio: `${(stored / nixStored).toFixed(2)}x`, goal: "<= 0.55x", ok: stored / nixStored <= 0.55,
    },
    {
      bench: "dedup", metric: "stored by the 2nd upload", garret: fmtSize(secondStored), reference: `${fmtSize(b.narSize)} NAR`,
      ratio: "-", goal: "-", ok: null,
    },
    { bench: "dedup", metric: "pack files", garret: String(packs), reference: "-", ratio: "-", goal: "-", ok: null },
  ];
  summary.push(...(await dedupTiming(flags.quick)));
  writeSummary(flags, summary);
});
