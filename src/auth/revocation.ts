import type { RevocationList } from "../db/types.ts";
import type { TokenClaims } from "./token.ts";

/** How long a replica trusts its copy of the revocation list: revocation takes effect within this. */
export const REVOCATION_TTL_MS = 2000;

/**
 * Revoked token ids and subs, read from the shared metadata store and kept for a short while, so
 * every replica refuses a revoked token within REVOCATION_TTL_MS without a query per request. One
 * reload at a time; requests meanwhile wait for it (a stale answer is never used past its TTL).
 */
export class Revocations {
  private list: RevocationList | null = null;
  private loadedAt = 0;
  private loading: Promise<RevocationList> | null = null;

  constructor(private readonly load: () => Promise<RevocationList>, private readonly ttlMs = REVOCATION_TTL_MS) {}

  private async current(): Promise<RevocationList> {
    if (this.list && Date.now() - this.loadedAt < this.ttlMs) return this.list;
    this.loading ??= (async () => {
      const started = Date.now();
      try {
        const list = await this.load();
        this.list = list;
        this.loadedAt = started;
        return list;
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  /**
   * A token is revoked when its id is, or its sub was revoked at or after it was issued (a token
   * without `iat`, as `atticadm make-token` mints them, counts as issued before any revocation).
   */
  async isRevoked(claims: TokenClaims): Promise<boolean> {
    const list = await this.current();
    if (claims.jti !== undefined && list.ids.has(claims.jti)) return true;
    const at = list.subs.get(claims.sub);
    return at !== undefined && (claims.iat === undefined || claims.iat <= at);
  }
}
