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

/** The closure of the given paths (symlinks such as ./result are resolved by Nix). */
export async function closureOf(paths: string[]): Promise<LocalPathInfo[]> {
  if (paths.length === 0) return [];
  const out = await run(["nix", "--extra-experimental-features", "nix-command", "path-info", "--recursive", "--json", ...paths]);
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
export function dumpNar(path: string): { stream: ReadableStream<Uint8Array>; done: Promise<void> } {
  const proc = Bun.spawn(["nix-store", "--dump", path], { stdout: "pipe", stderr: "pipe" });
  const done = (async () => {
    const code = await proc.exited;
    if (code !== 0) {
      const err = await new Response(proc.stderr).text();
      throw new NixCommandError(`nix-store --dump ${path} failed: ${err.trim().split("\n").pop() ?? code}`);
    }
  })();
  return { stream: proc.stdout, done };
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
