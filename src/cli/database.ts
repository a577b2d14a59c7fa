import { DatabaseUnavailable, openMetaStore } from "../db/open.ts";
import type { MetaStore } from "../db/types.ts";
import { UsageError } from "./errors.ts";

/** Opens the configured metadata store; a bad URL or an unreachable server is one line, exit 2. */
export async function openMetaStoreForCli(db: { url: string; poolSize: number }): Promise<MetaStore> {
  try {
    return await openMetaStore(db.url, { poolSize: db.poolSize });
  } catch (err) {
    if (err instanceof DatabaseUnavailable) throw new UsageError(err.message);
    throw err;
  }
}
