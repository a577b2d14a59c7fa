import { ApiClient, type UploadAnswer } from "./api.ts";
import { closureOf, dependenciesFirst, dumpNar, type LocalPathInfo } from "./nix.ts";

export interface PushEvents {
  plan(total: number, cached: number, toUpload: number): void;
  uploaded(path: LocalPathInfo, answer: UploadAnswer): void;
  failed(path: LocalPathInfo, err: Error): void;
}

export interface PushSummary {
  closure: number;
  alreadyCached: number;
  uploaded: number;
  deduplicated: number;
  failed: number;
  bytes: number;
}

const BATCH = 1000;
const storePathHash = (path: string): string => path.slice(path.lastIndexOf("/") + 1, path.lastIndexOf("/") + 33);

/** Asks the server which of the closure's paths it lacks, in batches. */
async function missingOf(api: ApiClient, cache: string, closure: LocalPathInfo[]): Promise<Set<string>> {
  const missing = new Set<string>();
  for (let i = 0; i < closure.length; i += BATCH) {
    const hashes = closure.slice(i, i + BATCH).map((p) => storePathHash(p.path));
    for (const h of await api.missingPaths(cache, hashes)) missing.add(h);
  }
  return missing;
}

async function uploadOne(api: ApiClient, cache: string, p: LocalPathInfo): Promise<UploadAnswer> {
  const nar = dumpNar(p.path);
  const [answer] = await Promise.all([
    api.uploadPath({
      cache,
      store_path_hash: storePathHash(p.path),
      store_path: p.path,
      references: p.references,
      system: null,
      deriver: p.deriver,
      sigs: p.signatures,
      ca: p.ca,
      nar_hash: p.narHash,
      nar_size: p.narSize,
    }, nar.stream),
    nar.done,
  ]);
  return answer;
}

/**
 * Pushes the closure of `paths` to a cache: only what the cache lacks, dependencies first, each
 * NAR streamed from nix-store --dump. A failed path is reported and the rest still go.
 */
export async function push(api: ApiClient, cache: string, paths: string[], events: PushEvents): Promise<PushSummary> {
  const closure = dependenciesFirst(await closureOf(paths));
  const missing = await missingOf(api, cache, closure);
  const todo = closure.filter((p) => missing.has(storePathHash(p.path)));
  events.plan(closure.length, closure.length - todo.length, todo.length);
  const summary: PushSummary = {
    closure: closure.length, alreadyCached: closure.length - todo.length, uploaded: 0, deduplicated: 0, failed: 0, bytes: 0,
  };
  const failedPaths = new Set<string>();
  for (const p of todo) {
    // A path whose dependency failed would be a broken closure on the server: skip it too.
    const brokenDep = p.references.find((r) => failedPaths.has(r));
    if (brokenDep) {
      failedPaths.add(p.path);
      summary.failed++;
      events.failed(p, new Error(`not pushed because its dependency ${brokenDep} failed`));
      continue;
    }
    try {
      const answer = await uploadOne(api, cache, p);
      if (answer.kind === "Deduplicated") summary.deduplicated++;
      else summary.uploaded++;
      summary.bytes += p.narSize;
      events.uploaded(p, answer);
    } catch (err) {
      failedPaths.add(p.path);
      summary.failed++;
      events.failed(p, err as Error);
    }
  }
  return summary;
}
