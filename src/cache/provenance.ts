import { GarretError } from "../errors.ts";
import type { CacheLogAnswer, PurgeAllAnswer, PurgeAnswer, PurgeRequest } from "../api/garret.ts";
import type { GcObject } from "../db/types.ts";
import { referrerClosure } from "../gc/retention.ts";
import { authorize, effectivePermission, type Caller } from "./access.ts";
import { recordAudit } from "./audit.ts";
import type { Garret } from "./context.ts";

/** Who pushed what: provenance is for those who may configure the cache (its readers do not learn its uploaders). */
export async function cacheLog(
  g: Garret, caller: Caller, cacheName: string, filter: { sub?: string; tokenId?: string },
): Promise<CacheLogAnswer> {
  const cache = await authorize(g, caller, cacheName, "configureCache");
  const pushes = await g.meta.pushLog(cache.id, filter);
  return {
    pushes: pushes.map((p) => ({
      store_path: p.storePath, uploaded_by: p.sub, token_id: p.tokenId, client: p.client, pushed_at: p.pushedAt,
    })),
  };
}

const bad = (message: string) => new GarretError("RequestError", message);

function parsePurge(body: Record<string, unknown>): { sub?: string; tokenId?: string; since: number | null; dryRun: boolean } {
  const sub = body.uploaded_by;
  const tokenId = body.token_id;
  if ((sub === undefined) === (tokenId === undefined)) throw bad("give exactly one of uploaded_by and token_id");
  if (sub !== undefined && (typeof sub !== "string" || sub === "")) throw bad("uploaded_by must be a non-empty string");
  if (tokenId !== undefined && (typeof tokenId !== "string" || tokenId === "")) throw bad("token_id must be a non-empty string");
  const since = body.since ?? null;
  if (since !== null && (typeof since !== "number" || !Number.isSafeInteger(since) || since < 0)) throw bad("since must be seconds since the epoch");
  const dryRun = body.dry_run ?? false;
  if (typeof dryRun !== "boolean") throw bad("dry_run must be a boolean");
  return { sub: sub as string | undefined, tokenId: tokenId as string | undefined, since, dryRun };
}

/**
 * Hides every path the uploader pushed to the cache (since a time, optionally) and every path that
 * depends on one of them, at once: chosen and deleted in one transaction (expireObjects), so a
 * dependant pushed meanwhile is seen. Pins do not protect a purged path: a purge undoes a bad
 * uploader. The bytes go at the next collection. A dry run selects the same set and deletes none.
 */
export async function purgeUploader(g: Garret, caller: Caller, cacheName: string, body: PurgeRequest | Record<string, unknown>): Promise<PurgeAnswer> {
  const req = parsePurge(body as Record<string, unknown>);
  const cache = await authorize(g, caller, cacheName, "configureCache");
  const answer: PurgeAnswer = { dry_run: req.dryRun, purged: [], dependants: [] };
  const mine = (o: GcObject): boolean =>
    (req.sub === undefined || o.createdBy === req.sub)
    && (req.tokenId === undefined || o.pushedByToken === req.tokenId)
    && (req.since === null || (o.createdAt ?? 0) >= req.since);
  await g.meta.expireObjects(cache.id, (objects) => {
    const purged = objects.filter(mine);
    const dependants = referrerClosure(objects, purged.map((o) => o.storePathHash));
    answer.purged = purged.map((o) => o.storePath).sort();
    answer.dependants = dependants.map((o) => o.storePath).sort();
    return req.dryRun ? [] : [...purged, ...dependants].map((o) => o.id);
  });
  if (!req.dryRun) {
    const who = req.sub !== undefined ? `uploaded_by=${req.sub}` : `token_id=${req.tokenId}`;
    await recordAudit(g, caller, "cache.purge", cache.name,
      `${who}${req.since !== null ? ` since=${req.since}` : ""}: ${answer.purged.length} path(s), ${answer.dependants.length} dependant(s)`);
  }
  return answer;
}

/**
 * --all-caches: the purge in every cache the caller may configure. An uploader's paths exist only
 * in caches it could push to, so this is every cache it could push to that the caller may
 * configure; caches where it pushed nothing are left out of the answer (and the audit log).
 */
export async function purgeUploaderEverywhere(g: Garret, caller: Caller, body: PurgeRequest | Record<string, unknown>): Promise<PurgeAllAnswer> {
  const req = parsePurge(body as Record<string, unknown>);
  const answer: PurgeAllAnswer = { dry_run: req.dryRun, caches: {} };
  for (const c of await g.meta.listCaches()) {
    if (!effectivePermission(caller, c, c.name).configureCache) continue;
    // A dry run first: a cache with nothing of the uploader gets no purge and no audit entry.
    const probe = await purgeUploader(g, caller, c.name, { ...body, dry_run: true });
    if (probe.purged.length === 0) continue;
    answer.caches[c.name] = req.dryRun ? probe : await purgeUploader(g, caller, c.name, body);
  }
  return answer;
}
