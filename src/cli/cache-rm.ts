import { GARRET_PATHS } from "../api/garret.ts";
import { parseArgs } from "./args.ts";
import { REMOTE_OPTIONS, resolveRemote } from "./remote.ts";
import { UsageError } from "./errors.ts";
import { apiJson, storePathArg } from "./pin.ts";

/** `garret cache rm ALIAS:CACHE PATH [--recursive]`: removes one path from one cache. */
export async function cacheRmCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, options: { ...REMOTE_OPTIONS, recursive: { type: "boolean" }, json: { type: "boolean" } }, allowPositionals: true,
  });
  if (positionals.length !== 2) throw new UsageError("usage: garret cache rm ALIAS:CACHE PATH [--recursive]");
  const { api, cache } = await resolveRemote(positionals[0], { caFile: values["ca-file"] });
  const path = storePathArg(positionals[1]!);
  const hash = path.split("/").pop()!.slice(0, 32);
  const answer = await apiJson<{ deleted: string[] }>(api, cache, "DELETE",
    `${GARRET_PATHS.path(cache, hash)}${values.recursive ? "?recursive=true" : ""}`);
  if (values.json) process.stdout.write(`${JSON.stringify(answer)}\n`);
  else for (const p of answer.deleted) process.stdout.write(`✓ Removed ${p} from ${cache}\n`);
}
