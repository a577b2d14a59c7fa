import { parseArgs } from "./args.ts";
import { REMOTE_OPTIONS, resolveRemote } from "./remote.ts";
import { UsageError } from "./errors.ts";
import { GARRET_PATHS, type CacheLogAnswer, type PurgeAllAnswer, type PurgeAnswer, type PurgeRequest } from "../api/garret.ts";
import { parseValidity } from "../auth/token.ts";

const LOG_USAGE = "usage: garret cache log ALIAS:CACHE [--uploaded-by SUB | --token-id ID] [--json]";
const PURGE_USAGE = "usage: garret cache purge ALIAS:CACHE|ALIAS --all-caches --uploaded-by SUB | --token-id ID [--since TIME] [--dry-run] [--json]";

const OPTIONS = {
  "uploaded-by": { type: "string" }, "token-id": { type: "string" }, json: { type: "boolean" },
  since: { type: "string" }, "dry-run": { type: "boolean" }, "all-caches": { type: "boolean" }, ...REMOTE_OPTIONS,
} as const;

const iso = (t: number): string => new Date(t * 1000).toISOString();

/** `garret cache log`: the cache's pushes, newest first, with who, which token, from where. */
export async function cacheLogCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError(LOG_USAGE);
  if (values["uploaded-by"] !== undefined && values["token-id"] !== undefined) throw new UsageError("--uploaded-by and --token-id exclude each other");
  const { api, cache } = await resolveRemote(positionals[0], { caFile: values["ca-file"] });
  const q = new URLSearchParams();
  if (values["uploaded-by"] !== undefined) q.set("uploaded_by", values["uploaded-by"]);
  if (values["token-id"] !== undefined) q.set("token_id", values["token-id"]);
  const { pushes } = await api.about(cache, "configureCache", () => api.json<CacheLogAnswer>("GET", `${GARRET_PATHS.cacheLog(cache)}${q.size ? `?${q}` : ""}`));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(pushes, null, 2)}\n`);
    return;
  }
  if (pushes.length === 0) process.stdout.write(`no pushes in ${cache}\n`);
  for (const p of pushes) {
    process.stdout.write(`${iso(p.pushed_at)}  ${p.uploaded_by ?? "-"}  ${p.token_id ?? "-"}  ${p.client ?? "-"}  ${p.store_path}\n`);
  }
}

/** --since: an ISO time (2026-12-03T08:00Z), seconds since the epoch, or a duration ago (2h, 3d). */
export function parseSince(text: string, now = Date.now()): number {
  if (/^\d+$/.test(text)) return Number(text);
  const t = Date.parse(text);
  if (!Number.isNaN(t) && /^\d{4}-/.test(text)) return Math.floor(t / 1000);
  try {
    return Math.floor(now / 1000) - parseValidity(text);
  } catch {
    throw new UsageError(`--since: expected an ISO time, seconds since the epoch or a duration like 2h, got ${JSON.stringify(text)}`);
  }
}

/** `garret cache purge`: hides an uploader's paths and their dependants; --dry-run lists them only. */
export async function cachePurgeCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError(PURGE_USAGE);
  const sub = values["uploaded-by"];
  const tokenId = values["token-id"];
  if ((sub === undefined) === (tokenId === undefined)) throw new UsageError(`give exactly one of --uploaded-by and --token-id; ${PURGE_USAGE}`);
  const body: PurgeRequest = { dry_run: values["dry-run"] === true };
  if (sub !== undefined) body.uploaded_by = sub;
  if (tokenId !== undefined) body.token_id = tokenId;
  if (values.since !== undefined) body.since = parseSince(values.since);
  if (values["all-caches"]) {
    // Only the alias matters: every cache the caller may configure is purged.
    const { api } = await resolveRemote(`${positionals[0]!.split(":")[0]}:all`, { caFile: values["ca-file"] });
    const all = await api.json<PurgeAllAnswer>("POST", GARRET_PATHS.purgeAll, body);
    if (values.json) process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
    else if (Object.keys(all.caches).length === 0) process.stdout.write("nothing of that uploader in any cache you may configure\n");
    else for (const [cache, answer] of Object.entries(all.caches)) printPurge(cache, answer);
    return;
  }
  const { api, cache } = await resolveRemote(positionals[0], { caFile: values["ca-file"] });
  const answer = await api.about(cache, "configureCache", () => api.json<PurgeAnswer>("POST", GARRET_PATHS.cachePurge(cache), body));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    return;
  }
  printPurge(cache, answer);
}

function printPurge(cache: string, answer: PurgeAnswer): void {
  const verb = answer.dry_run ? "would purge" : "purged";
  process.stdout.write(`${verb} ${answer.purged.length} path(s) and ${answer.dependants.length} dependant(s) from ${cache}${answer.dry_run ? " (dry run)" : "; their bytes go at the next gc"}\n`);
  for (const p of answer.purged) process.stdout.write(`  ${p}\n`);
  for (const p of answer.dependants) process.stdout.write(`  ${p} (depends on a purged path)\n`);
}
