import { openDb } from "./db.ts";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { narStream, runOk } from "./nix.ts";

export interface PathInfo {
  path: string;
  narHash: string; // sha256:<hex>
  narSize: number;
  references: string[];
}

export function pathInfo(path: string): PathInfo {
  const [p] = JSON.parse(runOk(["nix", "path-info", "--json", path])) as { path: string; narHash: string; narSize: number; references: string[] }[];
  const hex = Buffer.from(p!.narHash.replace(/^sha256-/, ""), "base64").toString("hex");
  return { path: p!.path, narHash: `sha256:${hex}`, narSize: p!.narSize, references: p!.references };
}

export function storeHashOf(path: string): string {
  return path.split("/").pop()!.slice(0, 32);
}

/** Uploads one store path through upload-path, streaming its NAR from nix-store --dump. */
export async function uploadPath(
  url: string, token: string, cache: string, path: string, body?: ReadableStream<Uint8Array>,
): Promise<Response> {
  const info = pathInfo(path);
  const nar = body ?? narStream(path);
  return fetch(`${url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: {
      authorization: `Bearer ${token}`,
      "x-attic-nar-info": JSON.stringify({
        cache, store_path_hash: storeHashOf(path), store_path: path, references: info.references,
        system: null, deriver: null, sigs: [], ca: null, nar_hash: info.narHash, nar_size: info.narSize,
      }),
    },
    body: nar,
  });
}

/** Read-only look into the server's metadata, for checks that must not trust the API (either engine). */
export { openDb };

export function storageFiles(dataDir: string): { path: string; size: number }[] {
  const root = join(dataDir, "storage");
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]);
  return walk(root).filter((p) => !p.includes("/.tmp/")).map((p) => ({ path: p, size: statSync(p).size }));
}

export function storedBytes(dataDir: string): number {
  return storageFiles(dataDir).reduce((n, f) => n + f.size, 0);
}

/** Every indexed chunk must point at bytes that storage holds. Returns the offenders. */
export function danglingChunks(dataDir: string): string[] {
  const db = openDb(dataDir);
  try {
    const rows = db.query(`SELECT c.chunk_hash, p.storage_key, c.pack_offset, c.stored_size FROM chunks c
      JOIN packs p ON p.id = c.pack_id WHERE c.state = 'valid'`).all() as
      { chunk_hash: string; storage_key: string; pack_offset: number; stored_size: number }[];
    return rows.filter((r) => {
      try {
        return statSync(join(dataDir, "storage", r.storage_key)).size < r.pack_offset + r.stored_size;
      } catch {
        return true;
      }
    }).map((r) => r.chunk_hash);
  } finally {
    db.close();
  }
}

export async function narinfoOf(url: string, cache: string, path: string, token?: string): Promise<Record<string, string>> {
  const res = await fetch(`${url}/${cache}/${storeHashOf(path)}.narinfo`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  if (!res.ok) throw new Error(`narinfo ${res.status}`);
  return Object.fromEntries((await res.text()).trim().split("\n").map((l) => {
    const i = l.indexOf(": ");
    return [l.slice(0, i), l.slice(i + 2)];
  }));
}
