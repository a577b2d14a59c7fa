/**
 * nix copy bench (issue 15, acceptance 7): wall time of stock `nix copy --to http://garret/<cache>`
 * against `nix copy --to file://DIR` of the same closure, with zstd and with xz (Nix's default),
 * in one run. Goal: garret at least 0.9x the speed of a local directory.
 *
 *   bun scripts/bench/copy.ts [--quick] [--summary FILE]
 *
 * A second reference, in the same run: `nix copy --to` a trivial HTTP server that keeps each PUT
 * in memory (static-put-server.ts). Nix 2.8's HTTP store sends one path at a time, four requests
 * each (HEAD narinfo, HEAD nar, PUT nar, PUT narinfo), so that floor is far above file://; how
 * close garret gets to it is what garret's side costs.
 *
 * The closure is the issue's 300 small text paths (--quick: 40). Each run copies into a fresh
 * cache, directory or server path, so every path is really sent; the three targets alternate so
 * load drifts hit all of them.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  buildWideClosure, createCache, median, mintToken, NIX_OPTS, parseFlags, printTable, removeDir, requireNix, run, section, startGarret, startStaticServer, stopAll, tempDir, writeSummary, type SummaryRow,
} from "./common.ts";

const flags = parseFlags();
requireNix();
const PATHS = flags.quick ? 40 : 300;
const ROUNDS = flags.quick ? 1 : 3;
section(`copy: nix copy of ${PATHS} paths to garret vs to file:// (scripts/bench/copy.ts)`);

function timeCopy(to: string, netrc: string | null, top: string): number {
  const t = performance.now();
  const r = run(["nix", ...NIX_OPTS, ...(netrc ? ["--option", "netrc-file", netrc] : []), "copy", "--to", to, top]);
  if (r.code !== 0) throw new Error(`nix copy --to ${to} failed: ${r.stderr}`);
  return (performance.now() - t) / 1000;
}

const rows: SummaryRow[] = [];
const table: string[][] = [];
try {
  const top = buildWideClosure(PATHS, 16 * 1024, `copy-${Date.now().toString(36)}`);
  const g = await startGarret();
  const staticUrl = (await startStaticServer()).url;
  const token = mintToken(g.dataDir);
  const netrc = join(tempDir("garret-bench-netrc-"), "netrc");
  writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
  let n = 0;
  for (const compression of ["zstd", "xz"]) {
    const garret: number[] = [];
    const file: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const cache = `copy${n++}`;
      await createCache(g.url, token, cache);
      garret.push(timeCopy(`${g.url}/${cache}?compression=${compression}`, netrc, top));
      const dir = tempDir("garret-bench-filecache-");
      file.push(timeCopy(`file://${dir}?compression=${compression}`, null, top));
      removeDir(dir);
      plain.push(timeCopy(`${staticUrl}/${cache}?compression=${compression}`, null, top));
    }
    const tg = median(garret);
    const tf = median(file);
    const ts = median(plain);
    const speed = tf / tg; // garret's speed relative to the local directory
    const runs = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(" ");
    table.push([compression, `${tg.toFixed(2)} s`, `${tf.toFixed(2)} s`, `${ts.toFixed(2)} s`, `${speed.toFixed(2)}x`, `${(ts / tg).toFixed(2)}x`,
      runs(garret), runs(file), runs(plain)]);
    rows.push({
      bench: "copy", metric: `nix copy ${PATHS} paths, ${compression}`, garret: `${tg.toFixed(2)} s`,
      reference: `${tf.toFixed(2)} s (file://), ${ts.toFixed(2)} s (trivial PUT server)`,
      ratio: `${speed.toFixed(2)}x`, goal: ">= 0.9x", ok: speed >= 0.9,
    });
  }
  printTable(`nix copy --to garret vs --to file:// vs --to a trivial PUT server (${PATHS} paths of 16 KiB, median of ${ROUNDS})`,
    ["compression", "garret", "file://", "PUT server", "vs file://", "vs PUT server", "garret runs", "file:// runs", "PUT server runs"], table,
    ["vs X = X's time / garret's time (1.00x: as fast); goal 0.9x or more vs file://",
      "PUT server: static-put-server.ts, bodies kept in memory, nothing verified or fsynced: Nix's own cost over HTTP"]);
  writeSummary(flags, rows);
} finally {
  await stopAll();
}
