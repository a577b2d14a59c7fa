import { GarretError } from "../errors.ts";
import { isValidStorePathHash, parseStorePathBasename } from "../nix/store-path.ts";
import { DecodeError, decodeContent, isSupportedContentEncoding } from "../store/compression.ts";
import { authorize, type Caller } from "./access.ts";
import { narListing } from "../nix/nar-listing.ts";
import { openNar } from "../store/nar-reader.ts";
import type { Garret } from "./context.ts";

/**
 * The other files Nix's HTTP binary cache store writes beside NARs and narinfos: build logs
 * (`log/<drv basename>`, `nix store copy-log --to`), NAR listings (`<hash>.ls`,
 * `?write-nar-listing=true`) and debug info links (`debuginfo/<build-id>`,
 * `?index-debug-info=true`). Each is private to its cache, stored decoded, bounded in size, and
 * checked for what it must be (text / JSON) before it is kept.
 */
export type SideKind = "log" | "ls" | "debuginfo";

const LIMIT: Record<SideKind, number> = { log: 64 * 1024 * 1024, ls: 16 * 1024 * 1024, debuginfo: 64 * 1024 };
export const CONTENT_TYPE: Record<SideKind, string> = {
  log: "text/plain; charset=utf-8", ls: "application/json", debuginfo: "application/json",
};

const noSuchObject = (): GarretError => new GarretError("NoSuchObject", "The requested object does not exist.");

/** The name is checked against what Nix writes there, so nothing else becomes a storage key. */
function validName(kind: SideKind, name: string, storeDir: string): boolean {
  switch (kind) {
    case "log":
      if (!name.endsWith(".drv")) return false;
      try {
        parseStorePathBasename(name, storeDir);
        return true;
      } catch {
        return false;
      }
    case "ls":
      return isValidStorePathHash(name);
    case "debuginfo":
      return /^[0-9a-f]{8,128}(\.debug)?$/.test(name); // Nix 2.8 writes <build-id>.debug
  }
}

/**
 * A log is keyed by its derivation's hash: store path names may hold characters keys may not. A
 * debug info link is one file whether asked for as `<build-id>` or `<build-id>.debug`.
 */
const keyOf = (cacheId: number, kind: SideKind, name: string): string =>
  `files/${cacheId}/${kind}/${kind === "log" ? name.slice(0, 32) : name.replace(/\.debug$/, "")}`;

export async function putSideFile(
  g: Garret, caller: Caller, cacheName: string, kind: SideKind, name: string,
  body: AsyncIterable<Uint8Array>, contentEncoding: string,
): Promise<void> {
  const cache = await authorize(g, caller, cacheName, "push");
  if (!validName(kind, name, cache.storeDir)) throw new GarretError("RequestError", `${name} is not a valid ${kind} file name`);
  if (!isSupportedContentEncoding(contentEncoding)) throw new GarretError("UnsupportedEncoding", `Content-Encoding ${contentEncoding} is not supported`);
  const pieces: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const piece of decodeContent(body, contentEncoding, LIMIT[kind])) {
      size += piece.length;
      if (size > LIMIT[kind]) throw new DecodeError("limit", "");
      pieces.push(piece);
    }
  } catch (err) {
    if (err instanceof DecodeError) {
      throw err.reason === "limit"
        ? new GarretError("RequestError", `a ${kind} file is at most ${LIMIT[kind]} bytes`)
        : new GarretError("InvalidEncoding", err.message);
    }
    throw err;
  }
  if (kind !== "log") {
    try {
      const v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(pieces)));
      if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    } catch {
      throw new GarretError("RequestError", `a ${kind} file must be a JSON object`);
    }
  }
  await g.storage.put(keyOf(cache.id, kind, name), pieces);
}

export async function getSideFile(g: Garret, caller: Caller, cacheName: string, kind: SideKind, name: string): Promise<Uint8Array> {
  const cache = await authorize(g, caller, cacheName, "pull");
  if (!validName(kind, name, cache.storeDir)) throw noSuchObject();
  const key = keyOf(cache.id, kind, name);
  if (!(await g.storage.exists(key))) {
    if (kind === "ls") return generatedListing(g, cache.id, name);
    throw noSuchObject();
  }
  try {
    return await g.storage.read(key);
  } catch {
    throw noSuchObject();
  }
}

/**
 * The listing of a path whose pusher sent none (garret push, upload-path, nix copy without
 * write-nar-listing): read from its NAR as served, decompressed, file contents skipped.
 */
async function generatedListing(g: Garret, cacheId: number, storePathHash: string): Promise<Uint8Array> {
  const o = await g.meta.getObject(cacheId, storePathHash);
  if (!o) throw noSuchObject();
  const served = await g.meta.narToServe(cacheId, o.narHash);
  if (!served) throw noSuchObject();
  try {
    const body = await openNar(g.storage, served.chunks, o.compression, null);
    const stream = body.stream as unknown as AsyncIterable<Uint8Array>;
    const plain = body.compression === "none" ? stream : decodeContent(stream, body.compression);
    return Buffer.from(JSON.stringify(await narListing(plain)));
  } catch {
    throw new GarretError("StorageError", "the listing could not be made from the stored NAR");
  }
}
