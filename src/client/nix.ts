import { Database } from "bun:sqlite";
import { realpathSync } from "node:fs";
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

/** Runs a Nix command; a failure is Nix's last line, under the command's plain name (`nix path-info`). */
async function run(cmd: string[], name = cmd.slice(0, 2).join(" ")): Promise<string> {
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
    const last = err.trim().split("\n").filter(Boolean).pop()?.replace(/^error: /, "") ?? `exit code ${code}`;
    throw new NixCommandError(`${name} failed: ${last}`);
  }
  return out;
}

// --offline: an invalid path must fail at once, not after asking cache.nixos.org how to build it.
const PATH_INFO = ["nix", "--extra-experimental-features", "nix-command", "--offline", "path-info", "--json"];
const pathInfo = (args: string[]): Promise<string> => run([...PATH_INFO, ...args], "nix path-info");

/** The store directory: NIX_STORE_DIR, as Nix reads it, else /nix/store. */
export function storeDir(env = process.env): string {
  return (env.NIX_STORE_DIR || "/nix/store").replace(/\/+$/, "");
}

/**
 * Refuses arguments that are not store paths (or symlinks to one, such as ./result) before Nix
 * sees them: Nix would take `/tmp` for a flake reference and say so in its own terms.
 */
export function checkStorePaths(paths: string[], dir = storeDir()): void {
  for (const p of paths) {
    let real: string;
    try {
      real = realpathSync(p);
    } catch {
      throw new NixCommandError(`${p} does not exist; give store paths (${dir}/…) or symlinks to them such as ./result`);
    }
    if (!real.startsWith(`${dir}/`)) {
      throw new NixCommandError(`${p} is not a store path${real !== p ? ` (it is ${real})` : ""}; give a path in ${dir} or a symlink to one such as ./result`);
    }
  }
}

/** Which of these store paths are valid in the local store (resolving symlinks such as ./result). */
export async function validPaths(paths: string[]): Promise<{ valid: string[]; invalid: string[] }> {
  if (paths.length === 0) return { valid: [], invalid: [] };
  const list = JSON.parse(await pathInfo(paths)) as { path: string; valid?: boolean }[];
  return {
    valid: list.filter((p) => p.valid !== false).map((p) => p.path),
    invalid: list.filter((p) => p.valid === false).map((p) => p.path),
  };
}

export const NIX_DB = "/nix/var/nix/db/db.sqlite";
/** How Nix's database spells hashes, which is already the form a push sends. */
const HEX_HASH = /^sha256:[0-9a-f]{64}$/;
const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;

/**
 * The closure read straight from Nix's database (read-only, one recursive query): `nix path-info`
 * costs ~30 ms of Nix start-up, which is most of a push that finds everything cached. Returns null
 * when that is not possible (not a plain /nix/store path, unreadable database, unknown path), and
 * the caller asks Nix instead.
 */
function closureFromDb(paths: string[], dbPath = NIX_DB): LocalPathInfo[] | null {
  let resolved: string[];
  try {
    resolved = paths.map((p) => realpathSync(p));
  } catch {
    return null;
  }
  if (!resolved.every((p) => STORE_PATH.test(p))) return null;
  let db: Database;
  try {
    db = new Database(dbPath, { readonly: true });
  } catch {
    return null;
  }
  try {
    db.exec("PRAGMA busy_timeout = 2000");
    const marks = resolved.map(() => "?").join(",");
    const closure = `WITH RECURSIVE closure(id) AS (SELECT id FROM ValidPaths WHERE path IN (${marks})
      UNION SELECT r.reference FROM Refs r JOIN closure c ON r.referrer = c.id)`;
    const rows = db.query(`${closure} SELECT v.id, v.path, v.hash, v.narSize, v.deriver, v.sigs, v.ca
      FROM ValidPaths v JOIN closure c ON v.id = c.id`).all(...resolved) as
      { id: number; path: string; hash: string; narSize: number | null; deriver: string | null; sigs: string | null; ca: string | null }[];
    const found = new Set(rows.map((r) => r.path));
    if (!resolved.every((p) => found.has(p)) || rows.some((r) => r.narSize === null)) return null;
    // CROSS JOIN fixes the join order: walk the closure and look up each one's references. Left
    // to itself SQLite scanned all of Refs first, 20 ms on a store of 30 000 paths.
    const refs = db.query(`${closure} SELECT r.referrer AS id, v.path AS path FROM closure c
      CROSS JOIN Refs r ON r.referrer = c.id CROSS JOIN ValidPaths v ON v.id = r.reference`).all(...resolved) as { id: number; path: string }[];
    const refsOf = new Map<number, string[]>();
    for (const r of refs) refsOf.set(r.id, [...(refsOf.get(r.id) ?? []), r.path]);
    return rows.map((r) => ({
      path: r.path,
      narHash: HEX_HASH.test(r.hash) ? r.hash : formatHex(parseSha256(r.hash)),
      narSize: r.narSize!,
      references: (refsOf.get(r.id) ?? []).sort(),
      deriver: r.deriver || null,
      signatures: (r.sigs ?? "").split(" ").filter(Boolean),
      ca: r.ca || null,
    }));
  } catch {
    return null;
  } finally {
    db.close();
  }
}

/** The closure of the given paths (symlinks such as ./result are resolved). */
export async function closureOf(paths: string[]): Promise<LocalPathInfo[]> {
  if (paths.length === 0) return [];
  if (process.env.GARRET_NIX_DB !== "off") {
    const fast = closureFromDb(paths, process.env.GARRET_NIX_DB || NIX_DB);
    if (fast) return fast;
  }
  // A .drv argument means the derivation file itself, as a store path (what nix-store -qR lists);
  // the nix CLI would take it for its outputs unless told --derivation.
  const drvs = paths.filter((p) => p.endsWith(".drv"));
  const others = paths.filter((p) => !p.endsWith(".drv"));
  const lists = await Promise.all([
    others.length > 0 ? pathInfo(["--recursive", ...others]) : "[]",
    drvs.length > 0 ? pathInfo(["--recursive", "--derivation", ...drvs]) : "[]",
  ]);
  const seen = new Set<string>();
  const list = lists.flatMap((out) => JSON.parse(out) as {
    path: string; narHash: string; narSize: number; references?: string[]; deriver?: string;
    signatures?: string[]; ca?: string; valid?: boolean;
  }[]).filter((p) => !seen.has(p.path) && seen.add(p.path));
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
