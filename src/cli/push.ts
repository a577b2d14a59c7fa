import { parseArgs } from "node:util";
import { push } from "../client/push.ts";
import { resolveRemote } from "./remote.ts";
import { CliError, UsageError } from "./errors.ts";

const mib = (n: number): string => `${(n / 1048576).toFixed(2)} MiB`;

export async function pushCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, options: { json: { type: "boolean" } }, allowPositionals: true,
  });
  const [target, ...paths] = positionals;
  if (!target || paths.length === 0) throw new UsageError("usage: garret push ALIAS:CACHE PATH...");
  const { api, cache } = await resolveRemote(target);
  const say = (line: string) => (values.json ? undefined : process.stdout.write(`${line}\n`));
  const summary = await push(api, cache, paths, {
    plan: (total, cached, todo) => say(`Pushing ${todo} paths to ${cache} (${cached} already cached, ${total} in closure)`),
    uploaded: (p, a) => say(`✓ ${p.path} (${mib(p.narSize)}${a.kind === "Deduplicated" ? ", deduplicated" : ""})`),
    failed: (p, err) => process.stderr.write(`✗ ${p.path}: ${err.message}\n`),
  });
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else say(`Done: ${summary.uploaded} uploaded, ${summary.deduplicated} deduplicated, ${summary.alreadyCached} already cached, ${summary.failed} failed`);
  if (summary.failed > 0) throw new CliError(`${summary.failed} path(s) failed to push`);
}
