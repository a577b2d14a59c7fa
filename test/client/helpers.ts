/**
 * Helpers of the client tests: a logged-in client environment, wide closures built fast from
 * builtins.toFile, commands run without blocking the test's event loop (so an in-process proxy can
 * answer them), and a proxy that can fail requests on purpose.
 */
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Server } from "bun";
import { BUILD_OPTS, runOk, tempDir } from "../helpers/nix.ts";
import { garretCmd, mintToken, startServer, type TestServer } from "../helpers/server.ts";
import { openDb } from "../helpers/api.ts";

export interface Client {
  env: Record<string, string>;
  token: string;
}

/** A client config dir logged in to `server` as `alias` with every permission on every cache. */
export function loginClient(server: { url: string; dataDir: string }, alias = "local"): Client {
  const token = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--create-cache", "*",
    "--configure-cache", "*", "--destroy-cache", "*", "--delete", "*");
  const env = { XDG_CONFIG_HOME: tempDir("garret-client-"), XDG_STATE_HOME: tempDir("garret-state-"), GARRET_RETRY_BASE_MS: "50" };
  runOk(garretCmd("login", alias, server.url, token), { env });
  return { env, token };
}

export interface AsyncResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command without blocking this process (spawnSync would freeze an in-process proxy). */
export async function runAsync(cmd: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<AsyncResult> {
  const t = performance.now();
  const proc = Bun.spawn(cmd, {
    env: { ...process.env, ...opts.env },
    stdin: opts.input === undefined ? "ignore" : new TextEncoder().encode(opts.input),
    stdout: "pipe", stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited,
  ]);
  return { code, stdout, stderr, ms: performance.now() - t };
}

export async function runAsyncOk(cmd: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<AsyncResult> {
  const r = await runAsync(cmd, opts);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r;
}

/**
 * Builds `n` small leaves (toFile, ~`bytes` each, unique per tag), a chain of three paths that
 * reference each other, and a top derivation referencing all of them. Fast: one tiny build.
 */
export function wideClosure(tag: string, n: number, bytes = 2000): { top: string; closure: string[] } {
  const dir = tempDir("garret-expr-");
  writeFileSync(join(dir, "default.nix"), `
    let
      pad = i: builtins.concatStringsSep "" (builtins.genList (j: "${tag} \${toString i} \${toString j}\\n") (${bytes} / 24 + 1));
      leaves = builtins.genList (i: builtins.toFile "garret-leaf-${tag}-\${toString i}" (pad i)) ${n};
      c0 = builtins.toFile "garret-chain0-${tag}" "chain 0 ${tag}";
      c1 = builtins.toFile "garret-chain1-${tag}" "chain 1 \${c0}";
      c2 = builtins.toFile "garret-chain2-${tag}" "chain 2 \${c1}";
    in derivation {
      name = "garret-wide-${tag}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "echo \${c2} \${builtins.concatStringsSep " " leaves} > $out" ];
    }`);
  const top = runOk(["nix-build", ...BUILD_OPTS, "--no-out-link", join(dir, "default.nix")]).trim();
  const closure = runOk(["nix-store", "-qR", top]).trim().split("\n").filter(Boolean);
  return { top, closure };
}

/** Deletes a wideClosure from the local store, with the .drv that keeps its leaves alive. */
export function deleteWide(top: string, closure: string[]): void {
  const drv = runOk(["nix-store", "-qd", top]).trim();
  runOk(["nix-store", "--delete", ...closure, ...(drv.endsWith(".drv") ? [drv] : [])]);
}

/** Store paths of a cache's objects in the order the server committed them. */
export function committedOrder(dataDir: string, cache: string): { path: string; refs: string[] }[] {
  const db = openDb(dataDir);
  try {
    return (db.query(`SELECT o.store_path AS path, o.refs AS refs FROM objects o JOIN caches c ON c.id = o.cache_id
      WHERE c.name = ? ORDER BY o.id`).all(cache) as { path: string; refs: string }[])
      .map((r) => ({ path: r.path, refs: JSON.parse(r.refs) as string[] }));
  } finally {
    db.close();
  }
}

/** Paths whose references (in `closure`) were committed after them: must be none. */
export function orderViolations(dataDir: string, cache: string): string[] {
  const rows = committedOrder(dataDir, cache);
  const pos = new Map(rows.map((r, i) => [r.path.slice(r.path.lastIndexOf("/") + 1), i]));
  const bad: string[] = [];
  rows.forEach((r, i) => {
    for (const ref of r.refs) {
      const j = pos.get(ref);
      if (j === undefined || (j > i)) bad.push(`${r.path} before its reference ${ref}`);
    }
  });
  return bad;
}

export function uploadCount(server: TestServer): number {
  return server.log().match(/PUT \/_api\/v1\/upload-path 200/g)?.length ?? 0;
}

/** A free TCP port on 127.0.0.1 (for a server that must come back on the same address). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Proxy {
  url: string;
  server: Server<undefined>;
  /** Upload attempts seen per store path hash. */
  attempts: Map<string, number>;
  stop(): void;
}

/**
 * A reverse proxy in front of a garret server. `failUpload(hash, attempt)` returns a status to
 * answer instead of forwarding (e.g. 503 on the first attempt), or null to forward.
 */
export function startProxy(upstream: string, failUpload: (hash: string, attempt: number) => number | null,
  tls?: { cert: string; key: string }): Proxy {
  const attempts = new Map<string, number>();
  const server = Bun.serve({
    port: 0, hostname: "127.0.0.1", idleTimeout: 255, tls,
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method === "PUT" && url.pathname === "/_api/v1/upload-path") {
        const info = JSON.parse(req.headers.get("x-attic-nar-info") ?? "{}") as { store_path_hash?: string };
        const hash = info.store_path_hash ?? "";
        const n = (attempts.get(hash) ?? 0) + 1;
        attempts.set(hash, n);
        const verdict = failUpload(hash, n);
        if (verdict !== null) {
          await req.arrayBuffer().catch(() => undefined);
          return Response.json({ code: verdict, error: "ProxyError", message: `the proxy answers ${verdict}` }, { status: verdict });
        }
      }
      const headers = new Headers(req.headers);
      headers.delete("host");
      return fetch(`${upstream}${url.pathname}${url.search}`, {
        method: req.method, headers, body: req.body, duplex: "half", redirect: "manual",
      } as RequestInit);
    },
    error: () => new Response(null, { status: 599 }),
  });
  return {
    url: `${tls ? "https" : "http"}://127.0.0.1:${server.port}`, server, attempts,
    stop: () => server.stop(true),
  };
}

const shellQuote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;

/**
 * Runs a command on a pseudo-terminal (util-linux `script`), answering prompts: each step waits
 * until the output so far matches, then types `send`. Returns everything the terminal showed.
 */
export async function inPty(cmd: string[], env: Record<string, string>, steps: { waitFor: string | RegExp; send: string }[] = [],
  timeoutMs = 30000): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn(["script", "-q", "-e", "-c", cmd.map(shellQuote).join(" "), "/dev/null"], {
    stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...process.env, TERM: "xterm", ...env },
  });
  let out = "";
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  const pump = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      out += decoder.decode(value, { stream: true });
    }
  })();
  const deadline = Date.now() + timeoutMs;
  for (const step of steps) {
    const seen = () => (typeof step.waitFor === "string" ? out.includes(step.waitFor) : step.waitFor.test(out));
    while (!seen()) {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`no ${String(step.waitFor)} on the terminal; got:\n${out}`);
      await Bun.sleep(20);
    }
    await Bun.sleep(50);
    proc.stdin.write(step.send);
    proc.stdin.flush();
  }
  const timer = setTimeout(() => proc.kill("SIGKILL"), Math.max(1000, deadline - Date.now()));
  const code = await proc.exited;
  clearTimeout(timer);
  await pump;
  proc.stdin.end();
  return { code, out };
}

/** `garret serve` on a given port and data dir (a server that goes down and comes back). */
export function startServerAt(port: number, dataDir: string): Promise<TestServer> {
  return startServer({ port, dataDir });
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}
