/**
 * Per-request cost on the path of stock `nix copy --to http://host/<cache>` (issue 15): the
 * requests Nix 2.8 sends per path (HEAD narinfo, HEAD nar, PUT nar, PUT narinfo) and after them
 * (GET narinfo), each sent one at a time over one keep-alive connection with a token in Basic
 * auth as Nix's netrc sends it, against garret and, in the same run, the trivial PUT server of
 * static-put-server.ts (what any HTTP server on this machine costs).
 *
 *   bun scripts/bench/requests.ts [--quick] [--summary FILE]
 *
 * Reports, per request kind, the median round trip and the server process's CPU time per request. The NARs are made here (one
 * 16 KiB regular file each, zstd, unique content), so every PUT pair publishes a new path.
 */
import { encodeBase32 } from "../../src/nix/base32.ts";
import {
  createCache, fileNar, median, mintToken, parseFlags, printTable, procCpuSeconds, section, startGarret, startStaticServer, stopAll, writeSummary, type SummaryRow,
} from "./common.ts";

const flags = parseFlags();
const N = flags.quick ? 500 : 2000;
section(`requests: sequential keep-alive round trips per request kind, ${N} each (scripts/bench/requests.ts)`);

const sha256 = (b: Uint8Array): Uint8Array => new Bun.CryptoHasher("sha256").update(b).digest() as Uint8Array;

interface Path { hash: string; narUrl: string; nar: Uint8Array; narinfo: string }

/** A made-up store path of one 16 KiB file, compressed as Nix does with ?compression=zstd. */
function makePath(i: number): Path {
  const contents = new Uint8Array(16 * 1024);
  const seed = sha256(new TextEncoder().encode(`requests-bench-${Date.now()}-${i}`));
  for (let j = 0; j < contents.length; j++) contents[j] = 0x61 + ((seed[j % 32]! + j * 7) % 26);
  const nar = fileNar(contents);
  const file = Bun.zstdCompressSync(nar);
  const hash = encodeBase32(seed.subarray(0, 20));
  const fileHash = encodeBase32(sha256(file));
  const narinfo = [
    `StorePath: /nix/store/${hash}-bench-${i}`, `URL: nar/${fileHash}.nar.zst`, "Compression: zstd",
    `FileHash: sha256:${fileHash}`, `FileSize: ${file.length}`, `NarHash: sha256:${encodeBase32(sha256(nar))}`,
    `NarSize: ${nar.length}`, "References: ", "",
  ].join("\n");
  return { hash, narUrl: `nar/${fileHash}.nar.zst`, nar: file, narinfo };
}

type Kind = "PUT nar" | "PUT narinfo" | "HEAD narinfo 404" | "HEAD nar 404" | "GET narinfo 404" | "GET narinfo 200" | "GET /healthz";
const KINDS: Kind[] = ["PUT nar", "PUT narinfo", "HEAD narinfo 404", "HEAD nar 404", "GET narinfo 404", "GET narinfo 200", "GET /healthz"];

async function timed(url: string, init: RequestInit, expect: number[]): Promise<number> {
  const t = performance.now();
  const res = await fetch(url, init);
  await res.arrayBuffer();
  const us = (performance.now() - t) * 1000;
  if (!expect.includes(res.status)) throw new Error(`${init.method ?? "GET"} ${url}: ${res.status}, expected ${expect.join("/")}`);
  return us;
}

interface Figures { roundTrip: number; cpu: number }

/**
 * One run: each kind N times in a row against `base` (a cache URL), so the server's CPU time
 * (from /proc) over the loop is that kind's (work a PUT leaves for later, like a group commit,
 * lands in its own loop). The PUT loops publish N fresh paths, the GET 200 loop reads them.
 */
async function measure(base: string, origin: string, pid: number, auth: Record<string, string>): Promise<Map<Kind, Figures>> {
  const paths = Array.from({ length: N }, (_, i) => makePath(i));
  const fresh = Array.from({ length: N }, (_, i) => makePath(N + i));
  const missing = "0".repeat(32);
  const put = (type: string): Record<string, string> => ({ ...auth, "content-type": type });
  const send: Record<Kind, (i: number) => Promise<number>> = {
    "PUT nar": (i) => timed(`${base}/${paths[i]!.narUrl}`, { method: "PUT", headers: put("application/x-nix-nar"), body: paths[i]!.nar }, [200, 204]),
    "PUT narinfo": (i) => timed(`${base}/${paths[i]!.hash}.narinfo`, { method: "PUT", headers: put("text/x-nix-narinfo"), body: paths[i]!.narinfo }, [200, 204]),
    "HEAD narinfo 404": (i) => timed(`${base}/${fresh[i]!.hash}.narinfo`, { method: "HEAD", headers: auth }, [404]),
    "HEAD nar 404": (i) => timed(`${base}/${fresh[i]!.narUrl}`, { method: "HEAD", headers: auth }, [404]),
    "GET narinfo 404": () => timed(`${base}/${missing}.narinfo`, { headers: auth }, [404]),
    "GET narinfo 200": (i) => timed(`${base}/${paths[i]!.hash}.narinfo`, { headers: auth }, [200]),
    "GET /healthz": () => timed(`${origin}/healthz`, { headers: auth }, [404]),
  };
  // Warm the connection and the server's code paths.
  for (let i = 0; i < 100; i++) await timed(`${base}/${missing}.narinfo`, { method: "HEAD", headers: auth }, [404]);
  const out = new Map<Kind, Figures>();
  for (const k of KINDS) {
    const times: number[] = [];
    const cpu0 = procCpuSeconds(pid);
    for (let i = 0; i < N; i++) times.push(await send[k](i));
    await Bun.sleep(100); // what the loop left for later (a group commit) is counted in it
    out.set(k, { roundTrip: median(times), cpu: ((procCpuSeconds(pid) - cpu0) / N) * 1e6 });
  }
  return out;
}

const rows: SummaryRow[] = [];
try {
  const g = await startGarret();
  const plain = await startStaticServer();
  const token = mintToken(g.dataDir);
  await createCache(g.url, token, "requests");
  // What Nix sends with a netrc entry: Basic auth with the token as password.
  const basic = { authorization: `Basic ${Buffer.from(`x:${token}`).toString("base64")}` };
  const garret = await measure(`${g.url}/requests`, g.url, g.pid, basic);
  const ref = await measure(`${plain.url}/requests`, plain.url, plain.pid, {});
  const us = (n: number): string => `${n.toFixed(0)} µs`;
  const table = KINDS.map((k) => {
    const a = garret.get(k)!;
    const b = ref.get(k)!;
    return [k, us(a.roundTrip), us(b.roundTrip), us(a.cpu), us(b.cpu)];
  });
  const perPath = (m: Map<Kind, Figures>, f: keyof Figures): number =>
    (["HEAD narinfo 404", "HEAD nar 404", "PUT nar", "PUT narinfo"] as Kind[]).reduce((s, k) => s + m.get(k)![f], 0);
  table.push(["a path as nix copy sends it (HEAD, HEAD, PUT, PUT)", us(perPath(garret, "roundTrip")), us(perPath(ref, "roundTrip")),
    us(perPath(garret, "cpu")), us(perPath(ref, "cpu"))]);
  printTable(`per request kind: median round trip and server CPU time per request, ${N} in a row on one keep-alive connection`,
    ["request", "garret", "PUT server", "garret CPU", "PUT server CPU"], table,
    ["PUT server: static-put-server.ts (bodies kept in memory, nothing checked): Bun's own HTTP cost here",
      "CPU: the server process's user+system time over the loop (/proc, 10 ms ticks) / requests"]);
  for (const k of KINDS) {
    rows.push({ bench: "requests", metric: `${k} round trip`, garret: us(garret.get(k)!.roundTrip), reference: `${us(ref.get(k)!.roundTrip)} (trivial PUT server)`,
      ratio: `${(ref.get(k)!.roundTrip / garret.get(k)!.roundTrip).toFixed(2)}x`, goal: "-", ok: true });
  }
  writeSummary(flags, rows);
} finally {
  await stopAll();
}
