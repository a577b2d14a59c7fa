import type { StorageConfig } from "../config.ts";
import { LocalStorage } from "./local.ts";
import { S3Storage } from "./s3.ts";
import type { Storage } from "./storage.ts";

/** Builds the configured backend and checks it works, so a bad setup fails at startup. */
export async function openStorage(config: StorageConfig): Promise<Storage> {
  if (config.type === "local") {
    const local = new LocalStorage(config.path);
    await local.init();
    return local;
  }
  const { type: _type, ...settings } = config;
  const s3 = new S3Storage(settings);
  await s3.init();
  return s3;
}
