/**
 * Part of `npm run bench -- dedup`: does an upload's duration tell whether another tenant's
 * private cache holds its NAR? Two tenants with a private cache each. For each NAR size, the
 * median over interleaved rounds of three upload-path uploads of random-content NARs: one never
 * seen (the reference), one that only the other tenant's cache holds, and the same again once the
 * uploader's own cache holds it (reused, for scale). Goal: the second within 25% of the first.
 */
import { createCache, fileNar, fmtSize, garretCmd, median, MiB, printTable, randomStoreHash, runOk, startGarret, type SummaryRow } from "./common.ts";

const sha256 = (b: Uint8Array): string => new Bun.CryptoHasher("sha256").update(b).digest("hex");

/** A NAR of one regular file of `n` random bytes. */
function randomNar(n: number): Uint8Array {
  const contents = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(contents.subarray(o, Math.min(n, o + 65536)));
  return fileNar(contents);
}

export async function dedupTiming(quick: boolean): Promise<SummaryRow[]> {
  const server = await startGarret();
  try {
    const token = (cache: string): string => runOk(garretCmd("token", "create", "--data", server.dataDir, "--sub", cache,
      "--validity", "1d", "--pull", cache, "--push", cache, "--create-cache", cache)).trim();
    const [victim, attacker] = [token("victim"), token("attacker")];
    await createCache(server.url, victim, "victim", false);
    await createCache(server.url, attacker, "attacker", false);
    const upload = async (tok: string, cache: string, nar: Uint8Array): Promise<number> => {
      const hash = randomStoreHash();
      const t = performance.now();
      const res = await fetch(`${server.url}/_api/v1/upload-path`, {
        method: "PUT", body: nar, headers: {
          authorization: `Bearer ${tok}`,
          "x-attic-nar-info": JSON.stringify({ cache, store_path_hash: hash, store_path: `/nix/store/${hash}-timing`, references: [],
            nar_hash: `sha256:${sha256(nar)}`, nar_size: nar.length }),
        },
      });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`upload: ${res.status}`);
      return performance.now() - t;
    };
    const rows: string[][] = [];
    const summary: SummaryRow[] = [];
    for (const [size, rounds] of [[2000, quick ? 20 : 60], [200_000, quick ? 20 : 60], [(quick ? 8 : 32) * MiB, quick ? 3 : 7]] as const) {
      const fresh: number[] = [];
      const hidden: number[] = [];
      const own: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const secret = randomNar(size);
        await upload(victim, "victim", secret);
        // Alternating which goes first: neither gains from following the victim's upload.
        if (i % 2 === 0) fresh.push(await upload(attacker, "attacker", randomNar(size)));
        hidden.push(await upload(attacker, "attacker", secret));
        if (i % 2 === 1) fresh.push(await upload(attacker, "attacker", randomNar(size)));
        own.push(await upload(attacker, "attacker", secret));
      }
      const [f, h, o] = [median(fresh), median(hidden), median(own)];
      rows.push([fmtSize(size), f.toFixed(2), h.toFixed(2), o.toFixed(2), (h / f).toFixed(2)]);
      summary.push({
        bench: "dedup", metric: `${fmtSize(size)} NAR only another tenant holds: upload ms`, garret: h.toFixed(2),
        reference: `${f.toFixed(2)} (never seen)`, ratio: `${(h / f).toFixed(2)}x`, goal: "0.8x-1.25x", ok: h / f >= 0.8 && h / f <= 1.25,
      });
    }
    printTable("Upload time (median ms) by where the NAR already is", ["NAR", "never seen", "only another tenant's private cache", "own cache (reused)", "2nd / 1st"], rows,
      ["before the fix, the second column was the third's: 20 MB took 63 ms against 147 ms for a NAR never seen."]);
    return summary;
  } finally {
    await server.stop();
  }
}
