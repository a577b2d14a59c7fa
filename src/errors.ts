/**
 * Errors a user can cause, with the stable error names of Attic's API. The HTTP layer maps each
 * code to a status; the CLI prints the message as one line.
 */
export type ErrorCode =
  | "NoSuchCache"
  | "NoSuchObject"
  | "Unauthorized"
  | "Forbidden"
  | "RequestError"
  | "InvalidCacheName"
  | "InvalidStorePath"
  | "InvalidNarInfo"
  | "HashMismatch"
  | "SizeMismatch"
  | "InvalidNar"
  | "CacheAlreadyExists"
  | "UnsupportedEncoding"
  | "InvalidEncoding"
  | "StagingQuotaExceeded"
  | "StorageError"
  | "ObjectInUse"
  | "PathExists"
  | "InvalidSignature"
  | "NarTooLarge";

export class GarretError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = code;
  }
}

/**
 * A GarretError that ordinary traffic makes by the thousand (a narinfo or cache Nix asks about that
 * is not there), made without a stack trace: capturing one was a visible share of answering such
 * a request, and nobody reads it (the answer is made from the code and message).
 */
export function expectedError(code: ErrorCode, message: string): GarretError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new GarretError(code, message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export const STATUS_OF: Record<ErrorCode, number> = {
  NoSuchCache: 404,
  NoSuchObject: 404,
  Unauthorized: 401,
  Forbidden: 403,
  RequestError: 400,
  InvalidCacheName: 400,
  InvalidStorePath: 400,
  InvalidNarInfo: 400,
  HashMismatch: 400,
  SizeMismatch: 400,
  InvalidNar: 400,
  CacheAlreadyExists: 400,
  UnsupportedEncoding: 415,
  InvalidEncoding: 400,
  StagingQuotaExceeded: 413,
  StorageError: 503,
  ObjectInUse: 409,
  PathExists: 409,
  InvalidSignature: 400,
  NarTooLarge: 413,
};
