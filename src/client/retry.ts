import { ApiError } from "./api.ts";

/** Exponential backoff: attempt n (0-based) waits about base·2^n, capped, with jitter. */
export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  baseMs: number;
  maxMs: number;
}

export function defaultRetryPolicy(env: NodeJS.ProcessEnv = process.env): RetryPolicy {
  const base = Number(env.GARRET_RETRY_BASE_MS);
  return { retries: 5, baseMs: Number.isFinite(base) && base >= 0 ? base : 500, maxMs: 30000 };
}

/** Network failures (but not untrusted certificates), 5xx, 408 and 429 are worth another try. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof ApiError) || err.error === "TlsError") return false;
  return err.status === 0 || err.status >= 500 || err.status === 408 || err.status === 429;
}

export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const d = Math.min(policy.maxMs, policy.baseMs * 2 ** attempt);
  return Math.round(d / 2 + (Math.random() * d) / 2);
}

export async function withRetry<T>(
  policy: RetryPolicy,
  fn: (attempt: number) => Promise<T>,
  onRetry?: (attempt: number, err: Error, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.retries || !isRetryable(err)) throw err;
      const delay = backoffMs(policy, attempt);
      onRetry?.(attempt + 1, err as Error, delay);
      await Bun.sleep(delay);
    }
  }
}
