/**
 * Runs the real Nix binaries for test vectors. Nix is a hard requirement: without it these tests
 * would only check the code against itself, so a missing binary is a failure, never a skip.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const NIX_REQUIRED = "nix is required for the src/nix tests: install Nix (2.8 was used) so `nix`, `nix-store` and `nix-hash` are on PATH";

export function requireNix(): void {
  for (const bin of ["nix", "nix-store", "nix-hash", "nix-build"]) {
    if (!Bun.which(bin)) throw new Error(`${NIX_REQUIRED} (missing: ${bin})`);
  }
}

// No substituters: the test machine is offline and Nix would spend seconds retrying cache.nixos.org.
const env = { ...process.env, NIX_CONFIG: "substituters =\nexperimental-features = nix-command\n" };

export interface RunResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

/** Runs a command, whatever its exit status. */
export function runRaw(cmd: string[], stdin?: Uint8Array): RunResult {
  requireNix();
  const r = Bun.spawnSync(cmd, { env, stdin: stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: new Uint8Array(r.stdout), stderr: r.stderr.toString() };
}

/** Runs a command that must succeed; returns stdout. */
export function runBytes(cmd: string[], stdin?: Uint8Array): Uint8Array {
  const r = runRaw(cmd, stdin);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export function run(cmd: string[], stdin?: Uint8Array): string {
  return new TextDecoder().decode(runBytes(cmd, stdin)).trim();
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `garret-nix-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function nonce(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("hex");
}

/**
 * Builds two derivations with unique outputs, `top` referring to `dep`, and returns their store
 * paths. Sandboxing is off on the test machine and /bin/sh is the builder, so no nixpkgs needed.
 */
export function buildPathsWithReference(dir: string): { top: string; dep: string } {
  const n = nonce();
  const expr = `
let
  dep = derivation { name = "garret-dep-${n}"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo ${n} > $out"]; };
  top = derivation { name = "garret-top-${n}"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo \${dep} > $out"]; };
in { inherit dep top; }`;
  const file = join(dir, "paths.nix");
  writeFileSync(file, expr);
  const [dep, top] = run(["nix-build", file, "--no-out-link", "-A", "dep", "-A", "top"]).split("\n");
  return { dep: dep!, top: top! };
}

/** Adds a file with unique content to the store with `nix-store --add`; returns its store path. */
export function addUniqueFile(dir: string, name: string): string {
  const file = join(dir, name);
  writeFileSync(file, `garret test ${nonce()}\n`);
  return run(["nix-store", "--add", file]);
}
