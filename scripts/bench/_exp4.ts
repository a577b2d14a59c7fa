import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { buildWideClosure, createCache, mintToken, tempDir, NIX_OPTS, BUN, REPO } from "./common.ts";
const top = buildWideClosure(300, 16 * 1024, `exp4-${process.env.TAG ?? Date.now().toString(36)}`);
const dataDir = tempDir("exp4-data-");
const logPath = "/tmp/exp/server.log";
const proc = Bun.spawn([BUN, ...(process.env.PROF ? ["--cpu-prof", "--cpu-prof-md", "--cpu-prof-dir=/tmp/exp/prof", "--cpu-prof-interval=100"] : []), join(REPO, "src/main.ts"), "serve", "--listen", "127.0.0.1:0", "--data", dataDir], { stdout: Bun.file(logPath), stderr: Bun.file(logPath) });
let url = "";
while (!url) { await Bun.sleep(50); const m = existsSync(logPath) && /listening on (http:\/\/\S+)/.exec(readFileSync(logPath, "utf8")); if (m) url = m[1]!; }
const token = mintToken(dataDir);
const netrc = join(tempDir("exp-netrc-"), "netrc");
writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`);
await createCache(url, token, "exp");
const t = performance.now();
const p = Bun.spawnSync(["nix", ...NIX_OPTS, "--option", "netrc-file", netrc, "copy", "--to", `${url}/exp?compression=${process.env.COMP ?? "zstd"}`, top]);
console.log("copy", p.exitCode, ((performance.now() - t) / 1000).toFixed(2), "s");
proc.kill("SIGTERM"); await proc.exited;
