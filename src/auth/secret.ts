import { chmod, readFile, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

export const SECRET_FILE = "token-secret";

/**
 * Loads the HS256 token secret from the data dir, creating it (64 random bytes, base64, mode 0600)
 * on first use. The secret never appears in logs or command output.
 */
export async function loadOrCreateTokenSecret(dataDir: string): Promise<string> {
  return (await tokenSecret(dataDir)).secret;
}

/** Like loadOrCreateTokenSecret, and says whether this call created it (a first run). */
export async function tokenSecret(dataDir: string): Promise<{ secret: string; created: boolean }> {
  const path = join(dataDir, SECRET_FILE);
  try {
    return { secret: (await readFile(path, "utf8")).trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const secret = randomBytes(64).toString("base64");
  try {
    await writeFile(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return { secret: (await readFile(path, "utf8")).trim(), created: false };
    throw err;
  }
  await chmod(path, 0o600);
  return { secret, created: true };
}
