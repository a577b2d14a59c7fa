import { ApiClient, ApiError, type CallOptions, type UploadAnswer, type UploadNarInfo } from "./api.ts";
import { narBytes, narStream } from "./nar.ts";
import { closureOf, dependenciesFirst, dumpNar, NixCommandError, type LocalPathInfo } from "./nix.ts";
import { backoffMs, isRetryable, type RetryPolicy } from "./retry.ts";
import type { RateLimiter } from "./throttle.ts";

export type Compression = "auto" | "zstd" | "none";

export interface PushPlan {
  /** Paths in the closure of what was asked. */
  closure: number;
  /** Skipped: signed by one of the cache's upstream keys (e.g. cache.nixos.org-1). */
  upstream: number;
  /** Skipped: the cache has them already. */
  alreadyCached: number;
  /** To upload, and their NAR bytes. */
  todo: number;
  todoBytes: number;
}

export interface PushEvents {
  plan(plan: PushPlan): void;
  /** An upload attempt starts (attempt 0 is the first); bytes counted for earlier attempts are void. */
  start(path: LocalPathInfo, attempt: number): void;
  /** NAR bytes of `path` read and sent since the last event. */
  progress(path: LocalPathInfo, bytes: number): void;
  retry(path: LocalPathInfo, attempt: number, err: Error, delayMs: number): void;
  /**
   * A call before the uploads (the cache's settings, what it lacks) failed and is tried again: the
   * server is down or overloaded. Told once per attempt number, however many calls are waiting.
   */
  serverRetry(server: string, attempt: number, retries: number, err: ApiError, delayMs: number): void;
  uploaded(path: LocalPathInfo, answer: UploadAnswer): void;
  failed(path: LocalPathInfo, err: Error): void;
}

export interface PushSummary {
  closure: number;
  upstream: number;
  alreadyCached: number;
  uploaded: number;
  deduplicated: number;
  failed: number;
  /** NAR bytes of the paths uploaded. */
  bytes: number;
  retries: number;
  seconds: number;
  failures: { path: string; error: string }[];
}

export interface PushOptions {
  /** Parallel uploads (default 4). */
  jobs?: number;
  /** Push paths even when an upstream key signed them. */
  ignoreUpstreamFilter?: boolean;
  /** "auto": zstd on the way unless the server is on this machine (where compressing is slower). */
  compression?: Compression;
  limiter?: RateLimiter;
  retry?: RetryPolicy;
  /**
   * Paths known to be in the cache already (watch-store's memory): neither asked about nor sent.
   * The push adds every path it finds or puts in the cache (or skips as upstream) to this set.
   */
  known?: Set<string>;
  events?: Partial<PushEvents>;
}

const BATCH = 1000;
export const storePathHash = (path: string): string => path.slice(path.lastIndexOf("/") + 1, path.lastIndexOf("/") + 33);

/** Asks the server which of the closure's paths it lacks, in batches. */
async function missingOf(api: ApiClient, cache: string, closure: LocalPathInfo[], call: () => CallOptions): Promise<Set<string>> {
  const missing = new Set<string>();
  for (let i = 0; i < closure.length; i += BATCH) {
    const hashes = closure.slice(i, i + BATCH).map((p) => storePathHash(p.path));
    for (const h of await api.missingPaths(cache, hashes, call())) missing.add(h);
  }
  return missing;
}

const keyNameOf = (sig: string): string => sig.slice(0, Math.max(0, sig.indexOf(":")));

export function signedByUpstream(p: LocalPathInfo, upstreamKeys: ReadonlySet<string>): boolean {
  return p.signatures.some((s) => upstreamKeys.has(keyNameOf(s)));
}

function isLoopback(endpoint: string): boolean {
  try {
    const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, "");
    return host === "localhost" || host === "::1" || /^127\./.test(host);
  } catch {
    return false;
  }
}

/** Whether to compress on the way: over a real network zstd outruns the link; on loopback it only costs. */
export function shouldCompress(compression: Compression, endpoint: string): boolean {
  return compression === "zstd" || (compression === "auto" && !isLoopback(endpoint));
}

function counter(onBytes: (n: number) => void): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      onBytes(chunk.length);
      controller.enqueue(chunk);
    },
  });
}

/** Where NARs come from: read in-process from the store (fast), or from `nix-store --dump`. */
type NarSource = "native" | "nix-store";

function openNar(path: string, source: NarSource): { stream: ReadableStream<Uint8Array>; done: Promise<void>; kill(): void } {
  if (source === "nix-store") return dumpNar(path);
  return { stream: narStream(path), done: Promise.resolve(), kill: () => {} };
}

/**
 * NARs up to this size go as one buffer when nothing transforms them on the way; with -j N at
 * most N of them are in memory at once.
 */
const SMALL_NAR = 1024 * 1024;

function uploadInfo(cache: string, p: LocalPathInfo): UploadNarInfo {
  return {
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
  };
}

/** One attempt: NAR → count → (zstd) → (rate limit) → PUT upload-path. */
async function uploadOnce(api: ApiClient, cache: string, p: LocalPathInfo, compress: boolean,
  limiter: RateLimiter | undefined, onBytes: (n: number) => void, source: NarSource): Promise<UploadAnswer> {
  if (source === "native" && !compress && !limiter && p.narSize <= SMALL_NAR) {
    const nar = await narBytes(p.path, p.narSize);
    onBytes(nar.length);
    return api.uploadPath(uploadInfo(cache, p), nar);
  }
  const nar = openNar(p.path, source);
  let body = nar.stream.pipeThrough(counter(onBytes));
  if (compress) body = body.pipeThrough(new CompressionStream("zstd" as never) as unknown as TransformStream<Uint8Array, Uint8Array>);
  if (limiter) body = body.pipeThrough(limiter.transform());
  try {
    const answer = await api.uploadPath(uploadInfo(cache, p), body, { encoding: compress ? "zstd" : undefined });
    // The server verified hash and size, so the dump was complete; only reap the process.
    await nar.done.catch(() => {});
    return answer;
  } catch (err) {
    nar.kill();
    // If the dump itself failed (path deleted meanwhile), that is the real cause.
    const dumpErr = await Promise.race([nar.done.then(() => null, (e: Error) => e), Bun.sleep(200).then(() => null)]);
    throw dumpErr ?? err;
  }
}

/**
 * Pushes the closure of `paths` to a cache: skips what an upstream cache signed and what the cache
 * has, then uploads the rest with `jobs` parallel streams. A path starts only once every path it
 * references is in the cache, so the cache never holds a path without its closure. Network errors
 * and 5xx answers are retried with exponential backoff; a path that still fails is reported, its
 * dependents are skipped, and everything else still goes.
 */
export async function push(api: ApiClient, cache: string, paths: string[], opts: PushOptions = {}): Promise<PushSummary> {
  const started = performance.now();
  const ev = opts.events ?? {};
  const jobs = Math.max(1, opts.jobs ?? 4);
  const retry = opts.retry ?? api.retry;
  // Calls that run side by side (the settings and the first get-missing-paths) share one of these:
  // one line per attempt, not per call. Later batches, one after another, get one each.
  const announcer = (): CallOptions => {
    let announced = 0;
    return {
      retry,
      onRetry: (n, of, err, ms) => {
        if (n <= announced) return;
        announced = n;
        ev.serverRetry?.(api.base, n, of, err, ms);
      },
    };
  };
  const call = announcer();
  // The cache's upstream keys are asked for while the closure is read, not after.
  const config = opts.ignoreUpstreamFilter ? null : api.getCache<{ upstream_cache_key_names?: string[] }>(cache, call);
  config?.catch(() => {}); // awaited below; only keeps a closure failure from leaving it unhandled
  const closure = dependenciesFirst(await closureOf(paths));
  const unknown = closure.filter((p) => !opts.known?.has(p.path));
  // One request covers the whole closure: ask it while the cache's settings are on the way
  // instead of after (a round trip less); bigger closures ask only about non-upstream paths.
  const early = unknown.length <= BATCH ? missingOf(api, cache, unknown, () => call) : null;
  early?.catch(() => {}); // awaited below
  const upstreamKeys = new Set(config ? (await config).upstream_cache_key_names ?? [] : []);
  const upstream = closure.filter((p) => signedByUpstream(p, upstreamKeys));
  const candidates = unknown.filter((p) => !signedByUpstream(p, upstreamKeys));
  const missing = await (early ?? missingOf(api, cache, candidates, announcer));
  const todo = candidates.filter((p) => missing.has(storePathHash(p.path)));
  if (opts.known) {
    for (const p of upstream) opts.known.add(p.path);
    for (const p of candidates) if (!missing.has(storePathHash(p.path))) opts.known.add(p.path);
  }

  const summary: PushSummary = {
    closure: closure.length, upstream: upstream.length, alreadyCached: closure.length - upstream.length - todo.length,
    uploaded: 0, deduplicated: 0, failed: 0, bytes: 0, retries: 0, seconds: 0, failures: [],
  };
  ev.plan?.({
    closure: closure.length, upstream: upstream.length, alreadyCached: summary.alreadyCached,
    todo: todo.length, todoBytes: todo.reduce((n, p) => n + p.narSize, 0),
  });

  // The dependency graph among the paths to upload.
  const byPath = new Map(todo.map((p) => [p.path, p]));
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const p of todo) {
    const deps = [...new Set(p.references)].filter((r) => r !== p.path && byPath.has(r));
    waiting.set(p.path, deps.length);
    for (const d of deps) dependents.set(d, [...(dependents.get(d) ?? []), p.path]);
  }
  const ready = todo.filter((p) => waiting.get(p.path) === 0);
  const settled = new Set<string>();

  const fail = (p: LocalPathInfo, err: Error): void => {
    if (settled.has(p.path)) return;
    settled.add(p.path);
    summary.failed++;
    summary.failures.push({ path: p.path, error: err.message });
    ev.failed?.(p, err);
    // Its dependents would be broken closures on the server: skip them too.
    for (const d of dependents.get(p.path) ?? []) {
      fail(byPath.get(d)!, new Error(`not pushed because its dependency ${p.path} failed`));
    }
  };
  const succeed = (p: LocalPathInfo, answer: UploadAnswer): void => {
    settled.add(p.path);
    opts.known?.add(p.path);
    if (answer.kind === "Deduplicated") summary.deduplicated++;
    else summary.uploaded++;
    summary.bytes += p.narSize;
    ev.uploaded?.(p, answer);
    for (const d of dependents.get(p.path) ?? []) {
      const left = waiting.get(d)! - 1;
      waiting.set(d, left);
      if (left === 0 && !settled.has(d)) ready.push(byPath.get(d)!);
    }
  };
  const compress = shouldCompress(opts.compression ?? "auto", api.base);
  const uploadWithRetry = async (p: LocalPathInfo): Promise<UploadAnswer> => {
    let source: NarSource = process.env.GARRET_NAR_SOURCE === "nix-store" ? "nix-store" : "native";
    for (let attempt = 0; ; attempt++) {
      ev.start?.(p, attempt);
      try {
        return await uploadOnce(api, cache, p, compress, opts.limiter, (n) => ev.progress?.(p, n), source);
      } catch (err) {
        // Whatever kept the in-process reader from producing Nix's exact NAR (an unreadable
        // file, a store not at its logical path), nix-store --dump can do it: once more with it.
        const narProblem = !(err instanceof ApiError) || ["HashMismatch", "SizeMismatch", "InvalidNar"].includes(err.error);
        if (source === "native" && narProblem && !(err instanceof NixCommandError)) {
          source = "nix-store";
          continue;
        }
        if (attempt >= retry.retries || !isRetryable(err)) throw err;
        const delay = backoffMs(retry, attempt);
        summary.retries++;
        ev.retry?.(p, attempt + 1, err as Error, delay);
        await Bun.sleep(delay);
      }
    }
  };

  await new Promise<void>((resolve) => {
    let running = 0;
    const pump = (): void => {
      while (running < jobs && ready.length > 0) {
        const p = ready.shift()!;
        if (settled.has(p.path)) continue;
        running++;
        uploadWithRetry(p).then((a) => succeed(p, a), (err: Error) => fail(p, err)).finally(() => {
          running--;
          pump();
        });
      }
      if (running === 0 && ready.length === 0) resolve();
    };
    pump();
  });
  summary.seconds = Number(((performance.now() - started) / 1000).toFixed(3));
  return summary;
}
