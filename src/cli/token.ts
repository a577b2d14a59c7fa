import { mkdir } from "node:fs/promises";
import { parseArgs } from "./args.ts";
import { ConfigError, serverConfig } from "../config.ts";
import { TokenAuthority, parseValidity } from "../auth/token.ts";
import { loadOrCreateTokenSecret } from "../auth/secret.ts";
import { isValidCachePattern, PERMISSION_LETTERS, type CachePermissionClaims, type Permission } from "../auth/permissions.ts";
import { UsageError } from "./errors.ts";

/** Flag name of each permission, e.g. --create-cache. */
const FLAGS: Record<string, keyof Permission> = {
  pull: "pull", push: "push", delete: "delete", "create-cache": "createCache",
  "configure-cache": "configureCache", "configure-cache-retention": "configureCacheRetention",
  "destroy-cache": "destroyCache",
};

export async function tokenCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== "create") throw new UsageError("usage: garret token create --sub NAME --validity 1y [--pull PATTERN]...");
  const options = Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: "string" as const, multiple: true }]));
  const { values, options: given } = parseArgs({
    args: rest,
    options: { ...options, sub: { type: "string" }, validity: { type: "string" }, data: { type: "string" }, config: { type: "string" } },
  });
  const v = values as Record<string, string | string[] | undefined>;
  if (typeof v.sub !== "string" || v.sub === "") throw new UsageError("--sub NAME is required");
  if (typeof v.validity !== "string") throw new UsageError("--validity is required (e.g. 1d, 3mo, 1y)");
  let validity: number;
  try {
    validity = parseValidity(v.validity);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // Patterns in the order their flags were given: where globs overlap, the first one that matches
  // decides (as in Attic), so `--pull 'aw-*' --push '*'` may not push to aw-x.
  const caches: CachePermissionClaims = {};
  for (const { name: flag, value: pattern } of given) {
    const perm = Object.hasOwn(FLAGS, flag) ? FLAGS[flag]! : null;
    if (perm === null || typeof pattern !== "string") continue;
    if (!isValidCachePattern(pattern)) throw new UsageError(`--${flag}: invalid cache name or pattern ${JSON.stringify(pattern)}`);
    caches[pattern] = { ...caches[pattern], [PERMISSION_LETTERS[perm]]: 1 };
  }
  let dataDir: string;
  try {
    ({ dataDir } = serverConfig({ data: v.data as string | undefined, config: v.config as string | undefined }));
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const authority = new TokenAuthority(await loadOrCreateTokenSecret(dataDir));
  process.stdout.write(`${await authority.mint(v.sub, validity, caches)}\n`);
}
