import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand,
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand,
  PutObjectCommand, S3Client, S3ServiceException, UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import {
  assertSafeKey, MissingObjectError, putStream, StorageError, type ByteRange, type Storage, type StorageWriter,
} from "./storage.ts";

export interface S3Settings {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  /** Prepended to every key, e.g. "garret/". */
  prefix: string;
  /** From config; when absent the SDK's standard chain (AWS_* environment variables, profiles). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Size of one multipart part; also the most one writer holds in memory. */
  partSize: number;
  maxAttempts: number;
  /** Seconds a presigned download URL stays valid; 0 turns download redirects off. */
  redirectTtl: number;
}

export const DEFAULT_PART_SIZE = 32 * 1024 * 1024;
const MAX_DELETE_BATCH = 1000;

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string }).name;
  return statusOf(err) === 404 || name === "NotFound" || name === "NoSuchKey";
}

/** One line an operator can act on, from whatever the SDK threw. */
export function describeS3Error(err: unknown, bucket: string): string {
  const name = (err as { name?: string }).name ?? "Error";
  const status = statusOf(err);
  if (name === "NoSuchBucket" || (status === 404 && name === "NotFound")) return `S3 bucket ${JSON.stringify(bucket)} does not exist`;
  if (["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "CredentialsProviderError"].includes(name) || status === 403) {
    const detail = name === "Unknown" || name === "Forbidden" ? `HTTP ${status ?? 403}` : name;
    return `S3 rejected the credentials for bucket ${JSON.stringify(bucket)} (${detail}): check the access key and secret`;
  }
  if (err instanceof S3ServiceException) return `S3 error ${name}${status ? ` (HTTP ${status})` : ""}: ${err.message}`;
  return `cannot reach S3: ${(err as Error).message ?? String(err)}`;
}

/**
 * Storage on any S3-compatible object store. Packs stream up as multipart uploads holding one part
 * in memory; a pack smaller than a part is a single PutObject. Nothing is visible under a key
 * until the upload completes, and a key is only recorded in metadata after S3 confirmed it.
 * Throttling (503 SlowDown) and transient network errors are retried by the SDK's standard retry
 * strategy with exponential backoff.
 */
export class S3Storage implements Storage {
  readonly kind = "s3";
  // With 32 MiB parts: per GiB pushed, 4 packs x (create + complete) + 32 parts = 40 requests.
  readonly preferredPackSize = 256 * 1024 * 1024;
  readonly client: S3Client;

  constructor(readonly settings: S3Settings) {
    this.client = new S3Client({
      region: settings.region,
      endpoint: settings.endpoint,
      forcePathStyle: settings.forcePathStyle,
      maxAttempts: settings.maxAttempts,
      retryMode: "standard",
      credentials: settings.accessKeyId && settings.secretAccessKey
        ? { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey }
        : undefined,
    });
  }

  /** Fails at startup, with one clear line, when the bucket is missing or the credentials wrong. */
  async init(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.settings.bucket }));
    } catch (err) {
      throw new StorageError(describeS3Error(err, this.settings.bucket));
    }
  }

  /** HeadBucket: the bucket is there and these credentials may use it. */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.settings.bucket }));
    } catch (err) {
      throw new StorageError(describeS3Error(err, this.settings.bucket));
    }
  }

  objectKey(key: string): string {
    assertSafeKey(key);
    return `${this.settings.prefix}${key}`;
  }

  /** A small object is one PutObject through the writer (the pieces fit in its first part). */
  put(key: string, pieces: Uint8Array[]): Promise<number> {
    return putStream(this, key, pieces);
  }

  async createWriter(key: string): Promise<StorageWriter> {
    return new S3Writer(this, this.objectKey(key));
  }

  async read(key: string, range?: ByteRange): Promise<Uint8Array> {
    try {
      const res = await this.client.send(new GetObjectCommand({
        Bucket: this.settings.bucket,
        Key: this.objectKey(key),
        Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined,
      }));
      const bytes = await res.Body!.transformToByteArray();
      if (range && bytes.length !== range.length) throw new MissingObjectError(`object ${key} is shorter than expected`);
      return bytes;
    } catch (err) {
      if (err instanceof StorageError) throw err;
      if (isNotFound(err) || statusOf(err) === 416) throw new MissingObjectError(`object ${key} is missing`);
      throw new StorageError(describeS3Error(err, this.settings.bucket));
    }
  }

  async size(key: string): Promise<number | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.objectKey(key) }));
      return res.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw new StorageError(describeS3Error(err, this.settings.bucket));
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.size(key)) !== null;
  }

  async delete(key: string): Promise<void> {
    // S3 answers 204 for a missing key too: deleting what is gone is done.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: this.objectKey(key) }));
  }

  async fileSlice(): Promise<Blob | null> {
    return null;
  }

  async downloadUrl(key: string): Promise<string | null> {
    if (this.settings.redirectTtl <= 0) return null;
    const command = new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.objectKey(key) });
    return getSignedUrl(this.client, command, { expiresIn: this.settings.redirectTtl });
  }

  /** Deletes many keys with DeleteObjects, up to 1000 per request. */
  async deleteMany(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += MAX_DELETE_BATCH) {
      const batch = keys.slice(i, i + MAX_DELETE_BATCH).map((k) => ({ Key: this.objectKey(k) }));
      const res = await this.client.send(new DeleteObjectsCommand({
        Bucket: this.settings.bucket, Delete: { Objects: batch, Quiet: true },
      }));
      const failed = (res.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (failed.length > 0) throw new StorageError(`S3 could not delete ${failed.length} objects: ${failed[0]!.Code} ${failed[0]!.Message ?? ""}`);
    }
  }
}

/**
 * Streams one object up. Two part buffers: one fills while the previous part uploads, so the
 * network and the upload pipeline overlap; a third part waits for the second, which is the
 * backpressure. Memory: two parts per writer.
 */
class S3Writer implements StorageWriter {
  bytesWritten = 0;
  private buffer: Uint8Array;
  private spare: Uint8Array | null = null;
  private filled = 0;
  private uploadId: string | null = null;
  private inFlight: Promise<void> | null = null;
  private readonly parts: { ETag: string; PartNumber: number }[] = [];

  constructor(private readonly s3: S3Storage, private readonly key: string) {
    this.buffer = new Uint8Array(s3.settings.partSize);
  }

  private get bucket(): string {
    return this.s3.settings.bucket;
  }

  async write(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      const take = Math.min(data.length - offset, this.buffer.length - this.filled);
      this.buffer.set(data.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.buffer.length) await this.startPart();
    }
    this.bytesWritten += data.length;
  }

  /** Waits for the part in flight, then sends the full buffer and swaps in the other one. */
  private async startPart(): Promise<void> {
    await this.settle();
    if (!this.uploadId) {
      try {
        const res = await this.s3.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.key }));
        this.uploadId = res.UploadId!;
      } catch (err) {
        throw new StorageError(describeS3Error(err, this.bucket));
      }
    }
    const PartNumber = this.parts.length + 1;
    this.parts.push({ ETag: "", PartNumber });
    const body = this.buffer.subarray(0, this.filled);
    const sent = this.buffer;
    this.inFlight = this.s3.client.send(new UploadPartCommand({
      Bucket: this.bucket, Key: this.key, UploadId: this.uploadId, PartNumber, Body: body, ContentLength: body.length,
    })).then((res) => {
      this.parts[PartNumber - 1]!.ETag = res.ETag!;
      this.spare = sent;
    }, (err) => {
      throw new StorageError(describeS3Error(err, this.bucket));
    });
    this.inFlight.catch(() => {}); // surfaced by settle()
    this.buffer = this.spare ?? new Uint8Array(this.s3.settings.partSize);
    this.spare = null;
    this.filled = 0;
  }

  private async settle(): Promise<void> {
    const p = this.inFlight;
    this.inFlight = null;
    if (p) await p;
  }

  async commit(): Promise<void> {
    try {
      await this.settle();
      if (!this.uploadId) {
        await this.s3.client.send(new PutObjectCommand({
          Bucket: this.bucket, Key: this.key, Body: this.buffer.subarray(0, this.filled), ContentLength: this.filled,
        }));
      } else {
        if (this.filled > 0) await this.startPart();
        await this.settle();
        await this.s3.client.send(new CompleteMultipartUploadCommand({
          Bucket: this.bucket, Key: this.key, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts },
        }));
      }
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError(describeS3Error(err, this.bucket));
    } finally {
      this.buffer = new Uint8Array(0);
      this.spare = null;
    }
  }

  async abort(): Promise<void> {
    this.buffer = new Uint8Array(0);
    this.spare = null;
    await this.settle().catch(() => {});
    if (!this.uploadId) return;
    await this.s3.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId }))
      .catch(() => {}); // best effort: S3 lifecycle rules or the collector clean up the rest
  }
}
