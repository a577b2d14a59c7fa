import { GarretError } from "../errors.ts";
import { isValidStorePathHash } from "../nix/store-path.ts";
import type { PinRecord } from "../db/types.ts";
import { referrerClosure } from "../gc/retention.ts";
import { authorize, claimsOf, effectivePermission, type Caller } from "./access.ts";
import type { Garret } from "./context.ts";
import type { PinView } from "../api/garret.ts";

export type { PinView };

/** Pins and path deletion: the user-facing side of garbage collection (issue 5). */

export const PIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/;

function view(p: PinRecord, showCreator: boolean): PinView {
  const v: PinView = { name: p.name, store_path: p.storePath, created_at: p.createdAt };
  if (showCreator) v.created_by = p.createdBy;
  return v;
}

function assertPinName(name: string): void {
  if (!PIN_NAME.test(name)) throw new GarretError("RequestError", "pin names are 1-100 characters of A-Z a-z 0-9 . _ + -, starting with a letter or digit");
}

function storePathHashOf(v: unknown): string {
  if (typeof v !== "string") throw new GarretError("RequestError", 'expected {"store_path": "/nix/store/..."}');
  const hash = v.split("/").pop()!.slice(0, 32);
  if (!isValidStorePathHash(hash)) throw new GarretError("InvalidStorePath", `not a store path: ${JSON.stringify(v)}`);
  return hash;
}

export async function listPins(g: Garret, caller: Caller, cacheName: string): Promise<{ pins: PinView[] }> {
  const cache = await authorize(g, caller, cacheName, "pull");
  const showCreator = effectivePermission(caller, cache, cache.name).configureCache;
  return { pins: (await g.meta.listPins(cache.id)).map((p) => view(p, showCreator)) };
}

/** Pins a path the cache holds; it and its closure then outlive retention and quota. */
export async function pinPath(g: Garret, caller: Caller, cacheName: string, name: string, body: unknown): Promise<PinView> {
  const cache = await authorize(g, caller, cacheName, "push");
  assertPinName(name);
  const hash = storePathHashOf((body as { store_path?: unknown } | null)?.store_path);
  const notHeld = (): GarretError => new GarretError("NoSuchObject", `cache ${cache.name} does not hold ${(body as { store_path: string }).store_path}`);
  const o = await g.meta.getObject(cache.id, hash);
  if (!o) throw notHeld();
  // The path (or its cache) may go while we looked: the store pins it only if still held.
  const pin = await g.meta.addPin(cache.id, { name, storePathHash: hash, storePath: o.storePath, createdBy: claimsOf(caller)?.sub ?? null });
  if (!pin) throw notHeld();
  return view(pin, effectivePermission(caller, cache, cache.name).configureCache);
}

export async function unpinPath(g: Garret, caller: Caller, cacheName: string, name: string): Promise<void> {
  const cache = await authorize(g, caller, cacheName, "push");
  assertPinName(name);
  if (!(await g.meta.removePin(cache.id, name))) throw new GarretError("NoSuchObject", `cache ${cache.name} has no pin named ${name}`);
}

/**
 * Removes a path from one cache. A path that other paths of the cache reference is refused
 * (the cache would serve closures with a hole) unless `recursive`, which removes those
 * referrers too; a pinned path is refused. The bytes go at the next collection, where unshared.
 */
export async function deletePath(
  g: Garret, caller: Caller, cacheName: string, storePathHash: string, recursive: boolean,
): Promise<{ deleted: string[] }> {
  const cache = await authorize(g, caller, cacheName, "delete");
  if (!isValidStorePathHash(storePathHash)) throw new GarretError("InvalidStorePath", "expected a 32-character store path hash");
  // Decided and written in one transaction, so a referrer uploaded or a pin added meanwhile is
  // seen: the cache never keeps a path whose reference was deleted, nor loses a pinned one.
  const deleted: string[] = [];
  await g.meta.expireObjects(cache.id, (objects, pins) => {
    const target = objects.find((o) => o.storePathHash === storePathHash);
    if (!target) throw new GarretError("NoSuchObject", "The requested object does not exist.");
    const referrers = referrerClosure(objects, storePathHash);
    if (referrers.length > 0 && !recursive) {
      throw new GarretError("ObjectInUse", `${target.storePath} is referenced by ${referrers.length} other path(s) of ${cache.name}; delete recursively to remove them too`);
    }
    const victims = [target, ...referrers];
    const hashes = new Set(victims.map((v) => v.storePathHash));
    const pinned = pins.filter((p) => hashes.has(p.storePathHash));
    if (pinned.length > 0) throw new GarretError("ObjectInUse", `pinned as ${pinned.map((p) => p.name).join(", ")}; remove the pin first`);
    deleted.push(...victims.map((v) => v.storePath));
    return victims.map((v) => v.id);
  });
  return { deleted };
}
