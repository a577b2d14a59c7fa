import { parseArgs } from "./args.ts";
import { CopyRefused, copyDatabase } from "../db/copy.ts";
import { DatabaseUnavailable } from "../db/open.ts";
import { CliError, UsageError } from "./errors.ts";

/** `garret db copy --from sqlite:///… --to postgres://…` */
export async function dbCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== "copy") throw new UsageError("usage: garret db copy --from sqlite:///path/garret.db --to postgres://…");
  const { values } = parseArgs({ args: rest, options: { from: { type: "string" }, to: { type: "string" }, json: { type: "boolean" } } });
  if (!values.from || !values.to) throw new UsageError("garret db copy needs --from sqlite:///… and --to postgres://…");
  try {
    const r = await copyDatabase(values.from, values.to, (l) => process.stderr.write(`${l}\n`));
    process.stdout.write(values.json ? `${JSON.stringify(r)}\n`
      : `db copy: ${Object.entries(r.tables).map(([t, n]) => `${n} ${t}`).join(", ")}\n`);
  } catch (err) {
    if (err instanceof DatabaseUnavailable) throw new UsageError(err.message);
    if (err instanceof CopyRefused) throw new CliError(err.message);
    throw err;
  }
}
