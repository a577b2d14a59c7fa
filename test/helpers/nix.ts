import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Tests that need Nix fail, never skip, when it is missing: CI must install it. */
export function requireNix(): void {
  if (!Bun.which("nix") || !Bun.which("nix-store") || !Bun.which("nix-build")) {
    throw new Error("these tests need Nix (nix, nix-store, nix-build on PATH); .ci/run installs Debian's nix-bin");
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  input?: string;
  cwd?: string;
  /** Milliseconds before the command is killed (it then fails). */
  timeout?: number;
}

export function run(cmd: string[], opts: RunOptions = {}): RunResult {
  const proc = Bun.spawnSync(cmd, {
    env: { ...process.env, ...opts.env },
    stdin: opts.input === undefined ? "ignore" : Buffer.from(opts.input),
    cwd: opts.cwd,
    timeout: opts.timeout,
  });
  return { code: proc.exitCode ?? -1, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
}

export function runOk(cmd: string[], opts: RunOptions = {}): string {
  const r = run(cmd, opts);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A command's outcome as a failed expectation would best show it: "ok", or its exit code and stderr. */
export function outcome(r: RunResult): string {
  return r.code === 0 ? "ok" : `exit ${r.code}: ${r.stderr.trim()}`;
}

/** Temp dirs made by the tests; test/helpers/cleanup.ts removes them after the run. */
const made: string[] = [];

/** Removes every temp dir the tests made (unless GARRET_KEEP_TEMP is set, for a look afterwards). */
export function removeTempDirs(): void {
  if (process.env.GARRET_KEEP_TEMP) return;
  // A test server's data dir holds hundreds of MB; a whole run left gigabytes in /tmp.
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function tempDir(prefix = "garret-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Options that make a root Nix without daemon work here and keep caches of answers out of the way. */
export const NIX_OPTS = [
  "--option", "build-users-group", "",
  "--option", "sandbox", "false",
  "--option", "narinfo-cache-negative-ttl", "0",
  "--option", "narinfo-cache-positive-ttl", "0",
];

/** Builds run locally: no substituters, so nothing waits on the (unreachable) network. */
export const BUILD_OPTS = [...NIX_OPTS, "--option", "substituters", ""];

/**
 * Builds a closure with unique content from a local expression: `top` references `dep`, and an
 * optional `big` file of `bigBytes` pseudo-random bytes lives in dep. No nixpkgs needed.
 */
export function buildClosure(tag: string, opts: { bigBytes?: number } = {}): { top: string; dep: string } {
  const dir = tempDir("garret-expr-");
  const big = opts.bigBytes
    ? `/usr/bin/head -c ${opts.bigBytes} /dev/urandom > $out/big;`
    : "";
  const expr = `
    let
      sh = args: derivation { name = args.name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" args.script ]; };
      dep = sh { name = "garret-dep-${tag}"; script = "/bin/mkdir $out; echo dep ${tag} > $out/data; ${big}"; };
    in sh { name = "garret-top-${tag}"; script = "echo ${tag} \${dep} > $out"; }
  `;
  writeFileSync(join(dir, "default.nix"), expr);
  const top = runOk(["nix-build", ...BUILD_OPTS, "--no-out-link", join(dir, "default.nix")]).trim();
  const refs = runOk(["nix-store", "-q", "--references", top]).trim().split("\n").filter(Boolean);
  const dep = refs.find((r) => r.includes("garret-dep-"));
  if (!dep) throw new Error(`built ${top} without its dependency`);
  return { top, dep };
}

/**
 * A path's NAR as a stream. nix-store's stderr is dropped: a test that cuts the upload short (a
 * server killed mid-body) closes the pipe, and nix-store would print "writing to file: Broken pipe".
 */
export function narStream(path: string): ReadableStream<Uint8Array> {
  return Bun.spawn(["nix-store", "--dump", path], { stdout: "pipe", stderr: "ignore" }).stdout;
}

export function narOf(path: string): Buffer {
  return Buffer.from(Bun.spawnSync(["nix-store", "--dump", path]).stdout);
}

export function deleteFromStore(...paths: string[]): void {
  runOk(["nix-store", "--delete", ...paths]);
}

export function uniqueTag(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

/** Builds a Nix expression (a file's text) and returns its output path. */
export function buildExpr(expr: string): string {
  const dir = tempDir("garret-expr-");
  writeFileSync(join(dir, "default.nix"), expr);
  return runOk(["nix-build", ...BUILD_OPTS, "--no-out-link", join(dir, "default.nix")]).trim();
}

/** A derivation helper usable inside expressions given to buildExpr. */
export const SH = `sh = name: script: derivation { inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ]; };`;

/** Realises `path` with only this substituter and key; returns the result instead of throwing. */
export function substitute(substituter: string, publicKey: string, path: string, netrc?: string): RunResult {
  return run(["nix-store", ...NIX_OPTS, "--option", "substituters", substituter,
    "--option", "trusted-public-keys", publicKey, ...(netrc ? ["--option", "netrc-file", netrc] : []), "-r", path]);
}

/** The closure of a path, deleted from the local store (referrers first). */
export function deleteClosure(top: string): string[] {
  const closure = runOk(["nix-store", "-qR", top]).trim().split("\n").filter(Boolean);
  runOk(["nix-store", "--delete", ...closure]);
  return closure;
}
