import { parseArgs } from "./args.ts";
import { rememberCache } from "../client/config.ts";
import { push, type Compression, type PushOptions } from "../client/push.ts";
import { checkStorePaths } from "../client/nix.ts";
import { defaultRetryPolicy, type RetryPolicy } from "../client/retry.ts";
import { parseRate, RateLimiter } from "../client/throttle.ts";
import { outputMode, pushReporter } from "./progress.ts";
import { REMOTE_OPTIONS, resolveRemote } from "./remote.ts";
import { CliError, UsageError } from "./errors.ts";

/** Flags shared by push, queue --drain/--worker and watch-store. */
export const PUSH_OPTIONS = {
  ...REMOTE_OPTIONS,
  jobs: { type: "string", short: "j" },
  "ignore-upstream-cache-filter": { type: "boolean" },
  compression: { type: "string" },
  "limit-rate": { type: "string" },
  retries: { type: "string" },
  json: { type: "boolean" },
} as const;

function intFlag(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** Push options from the shared flags. */
export function pushOptionsFrom(values: Record<string, unknown>): PushOptions & { retry: RetryPolicy } {
  const compression = (values.compression as string | undefined) ?? "auto";
  if (!["auto", "zstd", "none"].includes(compression)) throw new UsageError("--compression must be auto, zstd or none");
  let limiter: RateLimiter | undefined;
  if (typeof values["limit-rate"] === "string") {
    try {
      limiter = new RateLimiter(parseRate(values["limit-rate"]));
    } catch (err) {
      throw new UsageError(`--limit-rate: ${(err as Error).message}`);
    }
  }
  const retry = defaultRetryPolicy();
  retry.retries = intFlag("retries", values.retries as string | undefined, retry.retries, 0, 100);
  return {
    jobs: intFlag("jobs", values.jobs as string | undefined, 4, 1, 256),
    ignoreUpstreamFilter: values["ignore-upstream-cache-filter"] === true,
    compression: compression as Compression,
    limiter,
    retry,
  };
}

async function readStdinPaths(): Promise<string[]> {
  const text = await new Response(Bun.stdin.stream()).text();
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
}

export async function pushCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, options: { ...PUSH_OPTIONS, stdin: { type: "boolean" } }, allowPositionals: true,
  });
  const [target, ...args] = positionals;
  const paths = values.stdin ? [...args, ...(await readStdinPaths())] : args;
  if (!target || (paths.length === 0 && !values.stdin)) {
    throw new UsageError("usage: garret push ALIAS:CACHE PATH... (or --stdin, one path per line)");
  }
  const opts = pushOptionsFrom(values);
  const { api, cache, alias, remembered } = await resolveRemote(target, { caFile: values["ca-file"] });
  checkStorePaths(paths);
  const reporter = await pushReporter(outputMode(values.json === true), cache);
  let summary;
  try {
    summary = await push(api, cache, paths, { ...opts, events: reporter.events });
  } catch (err) {
    reporter.abort();
    throw err;
  }
  reporter.finish(summary);
  // Read back and rewritten only the first time: a push used to re-read the config after every run.
  if (!remembered) await rememberCache(alias, cache, true);
  if (summary.failed > 0) throw new CliError(`${summary.failed} path(s) failed to push`);
}
