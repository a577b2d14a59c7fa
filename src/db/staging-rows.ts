import type { StagedNarRecord, StagedParts } from "./types.ts";

/** A staged_nars row as both drivers read it (migration 11). */
export interface StagedRow {
  id: number;
  cache_id: number;
  file: string;
  owner: string;
  lease_id: number;
  nar_hash: string;
  nar_size: number;
  parts: string;
  durable: number;
  created_at: number;
  expires_at: number;
}

export const STAGED_COLUMNS = "id, cache_id, file, owner, lease_id, nar_hash, nar_size, parts, durable, created_at, expires_at";

/** The staging statements both drivers run, with `?` placeholders (the PostgreSQL driver numbers them). */
export const STAGING_SQL = {
  /** Inside a commit: the staged NAR it publishes is still staged and durable; its lease goes next. */
  consume: "DELETE FROM staged_nars WHERE id = ? AND durable = 1 RETURNING lease_id",
  replace: `DELETE FROM staged_nars WHERE cache_id = ? AND file = ? RETURNING ${STAGED_COLUMNS}`,
  insert: `INSERT INTO staged_nars (cache_id, file, owner, lease_id, nar_hash, nar_size, parts, created_at, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
  find: `SELECT ${STAGED_COLUMNS} FROM staged_nars WHERE cache_id = ? AND file = ? AND expires_at > ?`,
  liveBytes: "SELECT COALESCE(SUM(nar_size), 0) AS n FROM staged_nars WHERE owner = ? AND expires_at > ?",
  markDurable: "UPDATE staged_nars SET durable = 1, parts = ? WHERE id = ?",
  unstage: `DELETE FROM staged_nars WHERE id = ? RETURNING ${STAGED_COLUMNS}`,
  expire: `DELETE FROM staged_nars WHERE expires_at <= ? RETURNING ${STAGED_COLUMNS}`,
  /** A staged NAR's lease lasts exactly as long as its record. */
  leaseUntil: "UPDATE upload_leases SET expires_at = ? WHERE id = ?",
  dropLease: "DELETE FROM upload_leases WHERE id = ?",
} as const;

export function toStaged(r: StagedRow): StagedNarRecord {
  return {
    id: Number(r.id), cacheId: Number(r.cache_id), file: r.file, owner: r.owner, leaseId: Number(r.lease_id),
    narHash: r.nar_hash, narSize: Number(r.nar_size), parts: JSON.parse(r.parts) as StagedParts, durable: Number(r.durable) === 1,
    createdAt: Number(r.created_at), expiresAt: Number(r.expires_at),
  };
}

/** The packs a staged NAR wrote alone: once it is dropped, nobody will commit into them. */
export function ownPackIds(rows: StagedRow[]): number[] {
  return rows.flatMap((r) => (JSON.parse(r.parts) as StagedParts).packs.filter((p) => !p.shared).map((p) => p.id));
}

/** Thrown inside a staging transaction to roll it back when the owner's quota would be passed. */
export class OverQuota extends Error {}
