import type { AuditEntry } from "../db/types.ts";
import { claimsOf, type Caller } from "./access.ts";
import type { Garret } from "./context.ts";

/** The admin actions the audit log records (issue 16). */
export type AuditAction =
  | "cache.create" | "cache.configure" | "cache.destroy" | "cache.purge" | "token.mint" | "token.revoke";

/** Who acted: a token's sub, or a name the caller gives (e.g. "cli:alice" for server-side commands). */
export function actorOf(caller: Caller | string): string {
  if (typeof caller === "string") return caller;
  return claimsOf(caller)?.sub ?? "anonymous";
}

/**
 * Records an admin action after it took effect. `detail` names what changed (setting names, counts,
 * a token id), never a secret: no token, no key.
 */
export async function recordAudit(
  g: Pick<Garret, "meta">, actor: Caller | string, action: AuditAction, target: string, detail: string | null = null,
): Promise<void> {
  await g.meta.recordAudit({ actor: actorOf(actor), action, target, detail });
}

export type { AuditEntry };
