import { createCache, mintToken, startGarret, stopAll, BUN } from "./common.ts";
import { join } from "node:path";
const g = await startGarret();
const token = mintToken(g.dataDir);
await createCache(g.url, token, "exp");
const proc = Bun.spawn([BUN, join(import.meta.dir, "static-put-server.ts")], { stdout: "pipe" });
const reader = proc.stdout.getReader(); const { value } = await reader.read();
const surl = /listening on (\S+)/.exec(new TextDecoder().decode(value))![1];
const auth = { authorization: "Basic " + btoa("x:" + token) };
async function bench(label: string, url: string, init: RequestInit, n = 2000) {
  for (let i = 0; i < 200; i++) await (await fetch(url, init)).arrayBuffer();
  const t = performance.now();
  for (let i = 0; i < n; i++) await (await fetch(url, init)).arrayBuffer();
  console.log(label, ((performance.now() - t) / n * 1000).toFixed(0), "µs/req");
}
const h = "0b20i2rpc3mdqr8dn0dbqvs5n6vr2zxq";
await bench("static HEAD narinfo", `${surl}/exp/${h}.narinfo`, { method: "HEAD" });
await bench("garret HEAD narinfo auth", `${g.url}/exp/${h}.narinfo`, { method: "HEAD", headers: auth });
await bench("garret HEAD narinfo anon (404 cache hidden)", `${g.url}/exp/${h}.narinfo`, { method: "HEAD" });
await bench("garret GET nix-cache-info auth", `${g.url}/exp/nix-cache-info`, { headers: auth });
await bench("garret HEAD nar auth", `${g.url}/exp/nar/0xj30zxfpqliswh41w0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.nar.zst`, { method: "HEAD", headers: auth });
await bench("garret GET /_api/v1/whoami? health", `${g.url}/healthz`, {});
console.log(g.log().split("\n").slice(-3).join("\n"));
proc.kill();
await stopAll();
