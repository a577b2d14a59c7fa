import type { StorageConfig } from "../config.ts";
import { openStorage } from "../store/open.ts";
import { StorageError, type Storage } from "../store/storage.ts";
import { CliError } from "./errors.ts";

/** The configured storage, checked; a bad bucket or credentials become one line for the user. */
export async function openStorageForCli(config: StorageConfig): Promise<Storage> {
  try {
    return await openStorage(config);
  } catch (err) {
    if (err instanceof StorageError) throw new CliError(`storage: ${err.message}`);
    throw err;
  }
}
