import { parseSha256, formatHex } from "../nix/hash.ts";

/** A store path as `nix path-info --json` describes it. */
export interface LocalPathInfo {
  path: string;
  narHash: string; // sha256:<hex>
  narSize: number;
  references: string[];
  deriver: string | null;
  signatures: string[];
  ca: string | null;
}

export class NixCommandError extends Error {}

async function run(cmd: string[]): Promise<string> {
  let proc;
  try {
    proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  } catch {
    throw new NixCommandError(`cannot run ${cmd[0]}: is Nix installed and on PATH?`);
  }
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited,
  ]);
  if (code !== 0) {
    const last = err.trim().split("\n").filter(Boolean).pop() ?? `exit code ${code}`;
    throw new NixCommandError(`${cmd.slice(0, 2).join(" ")} failed: ${last}`);
  }
  return out;
}

// --offline: an invalid path must fail at once, not after asking cache.nixos.org how to build it.
const PATH_INFO = ["nix", "--extra-experimental-features", "nix-command", "--offline", "path-info", "--json"];

/** Which of these store paths are valid in the local store (resolving symlinks such as ./result). */
export async function validPaths(paths: string[]): Promise<{ valid: string[]; invalid: string[] }> {
  if (paths.length === 0) return { valid: [], invalid: [] };
  const list = JSON.parse(await run([...PATH_INFO, ...paths])) as { path: string; valid?: boolean }[];
  return {
    valid: list.filter((p) => p.valid !== false).map((p) => p.path),
    invalid: list.filter((p) => p.valid === false).map((p) => p.path),
  };
}

/** The closure of the given paths (symlinks such as ./result are resolved by Nix). */
export async function closureOf(paths: string[]): Promise<LocalPathInfo[]> {
  if (paths.length === 0) return [];
  const out = await run([...PATH_INFO, "--recursive", ...paths]);
  const list = JSON.parse(out) as {
    path: string; narHash: string; narSize: number; references?: string[]; deriver?: string;
    signatures?: string[]; ca?: string; valid?: boolean;
  }[];
  return list.filter((p) => p.valid !== false).map((p) => ({
    path: p.path,
    narHash: formatHex(parseSha256(p.narHash)),
    narSize: p.narSize,
    references: p.references ?? [],
    deriver: p.deriver ?? null,
    signatures: p.signatures ?? [],
    ca: p.ca ?? null,
  }));
}

/** Streams the NAR of a path straight from `nix-store --dump`, never touching disk. */
export function dumpNar(path: string): { stream: ReadableStream<Uint8Array>; done: Promise<void>; kill(): void } {
  let proc;
  try {
    proc = Bun.spawn(["nix-store", "--dump", path], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  } catch {
    throw new NixCommandError("cannot run nix-store: is Nix installed and on PATH?");
  }
  const p = proc;
  const done = (async () => {
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    if (code !== 0) {
      throw new NixCommandError(`nix-store --dump ${path} failed: ${err.trim().split("\n").pop() || `exit code ${code}`}`);
    }
  })();
  done.catch(() => {}); // awaited by the caller when it matters
  return { stream: p.stdout, done, kill: () => { if (p.exitCode === null) p.kill("SIGKILL"); } };
}

/** Orders paths so that every path comes after the paths it references. */
export function dependenciesFirst(paths: LocalPathInfo[]): LocalPathInfo[] {
  const byPath = new Map(paths.map((p) => [p.path, p]));
  const ordered: LocalPathInfo[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (p: LocalPathInfo): void => {
    if (state.get(p.path)) return;
    state.set(p.path, "visiting");
    for (const r of p.references) {
      const dep = byPath.get(r);
      if (dep && r !== p.path) visit(dep);
    }
    state.set(p.path, "done");
    ordered.push(p);
  };
  for (const p of paths) visit(p);
  return ordered;
}
