import { formatPublicKey, parseSecretKey, type SecretKey } from "../nix/signing.ts";
import type { CacheRecord } from "../db/types.ts";

export interface CacheKey {
  secret: SecretKey;
  /** `name:base64`, as it goes into trusted-public-keys and server_sig_key. */
  publicKey: string;
}

const parsed = new Map<string, CacheKey>();
const MAX_KEYS = 10_000;

/**
 * A cache's signing key, parsed once. Parsing checks the public half against the seed, which costs
 * a scalar multiplication: too much to pay on every narinfo request.
 */
export function cacheKey(cache: CacheRecord): CacheKey {
  let key = parsed.get(cache.signingKey);
  if (!key) {
    const secret = parseSecretKey(cache.signingKey);
    key = { secret, publicKey: formatPublicKey(secret) };
    if (parsed.size >= MAX_KEYS) parsed.clear();
    parsed.set(cache.signingKey, key);
  }
  return key;
}
