/**
 * The storage interface every backend implements (local disk now, S3 later). Keys are relative,
 * slash-separated names chosen by garret itself, validated by `assertSafeKey`.
 */

export interface ByteRange {
  offset: number;
  length: number;
}

/** A write in progress. Nothing is visible under the key until `commit` resolves. */
export interface StorageWriter {
  write(data: Uint8Array): Promise<void>;
  /** Makes the bytes durable and visible under the key. */
  commit(): Promise<void>;
  /** Discards everything written; safe to call after a failed write. */
  abort(): Promise<void>;
  readonly bytesWritten: number;
}

export interface Storage {
  readonly kind: string;
  /**
   * Pack size that suits the backend: on object stores, bigger packs mean fewer requests per GiB
   * (each pack is one multipart upload), which is what they bill.
   */
  readonly preferredPackSize: number;
  createWriter(key: string): Promise<StorageWriter>;
  /**
   * Stores a small object whose bytes are all in memory, durably, in as few round trips as the
   * backend allows (one thread-pool hop per step counts on the upload hot path). Resolves with
   * its size once it is durable and visible under the key.
   */
  put(key: string, pieces: Uint8Array[]): Promise<number>;
  /** Reads a whole object or a range of it into memory; callers keep ranges bounded. */
  read(key: string, range?: ByteRange): Promise<Uint8Array>;
  /** Size in bytes, or null when the object does not exist. */
  size(key: string): Promise<number | null>;
  exists(key: string): Promise<boolean>;
  /** Deleting a missing object is not an error: the goal state is reached. */
  delete(key: string): Promise<void>;
  /** Deletes many objects in as few requests as the backend allows. */
  deleteMany(keys: string[]): Promise<void>;
  /**
   * A short-lived URL a client can download the whole object from directly, when the backend
   * and its settings allow it (S3 with download redirects enabled); null otherwise.
   */
  downloadUrl(key: string): Promise<string | null>;
  /**
   * A lazily read slice of an object that the HTTP server can send with Content-Length (Bun
   * reads a slice on its thread pool; only a whole file gets sendfile), when the backend has such
   * a thing (local files); null otherwise. Fails with
   * MissingObjectError when the object is missing or shorter than the range.
   */
  fileSlice(key: string, range: ByteRange): Promise<Blob | null>;
  /**
   * Whether the backend can be used right now (for readiness probes): resolves when it is
   * reachable and writable, fails with StorageError saying why otherwise. Cheap: one request or
   * one stat, no object is written.
   */
  check(): Promise<void>;
}

export class StorageError extends Error {}

export class MissingObjectError extends StorageError {}

const SAFE_KEY = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*(\/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$/;

/** Rejects traversal and anything outside a conservative alphabet, whatever the caller. */
export function assertSafeKey(key: string): void {
  if (!SAFE_KEY.test(key) || key.length > 512) throw new StorageError(`invalid storage key: ${JSON.stringify(key)}`);
}

/**
 * Writes a whole stream (or the pieces of an object in memory) under a key; `put` for backends
 * with nothing faster. A failed abort never hides the error that caused it.
 */
export async function putStream(storage: Storage, key: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<number> {
  const writer = await storage.createWriter(key);
  try {
    for await (const chunk of source) await writer.write(chunk);
    await writer.commit();
  } catch (err) {
    await writer.abort().catch(() => {});
    throw err;
  }
  return writer.bytesWritten;
}
