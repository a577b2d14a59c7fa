import { GarretError } from "../errors.ts";

const MAX_PREAMBLE = 4 * 1024 * 1024;

/**
 * Splits Attic's preamble form: the first `size` bytes of the body are JSON metadata, the rest is
 * the NAR. Returns the metadata and an iterable over the remaining bytes, without buffering them.
 */
export async function splitPreamble(
  body: ReadableStream<Uint8Array>, size: number,
): Promise<{ info: unknown; rest: AsyncIterable<Uint8Array> }> {
  if (!Number.isSafeInteger(size) || size <= 0 || size > MAX_PREAMBLE) {
    throw new GarretError("RequestError", "X-Attic-Nar-Info-Preamble-Size must be a positive integer up to 4 MiB");
  }
  const reader = body.getReader();
  const head = new Uint8Array(size);
  let have = 0;
  let leftover: Uint8Array | null = null;
  while (have < size) {
    const { done, value } = await reader.read();
    if (done) throw new GarretError("RequestError", "body ended inside the preamble");
    const take = Math.min(value.length, size - have);
    head.set(value.subarray(0, take), have);
    have += take;
    if (take < value.length) leftover = value.subarray(take);
  }
  let info: unknown;
  try {
    info = JSON.parse(new TextDecoder().decode(head));
  } catch {
    throw new GarretError("InvalidNarInfo", "the preamble is not valid JSON");
  }
  async function* rest(): AsyncGenerator<Uint8Array> {
    if (leftover) yield leftover;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  }
  return { info, rest: rest() };
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.length > 0) yield bytes;
}

/** Bodies up to this size are read in one go rather than streamed. */
const SMALL_BODY = 1024 * 1024;

/**
 * An upload's body as the ingest pipeline reads it. A small one with a known length is read in
 * one native call: streaming it cost a promise round trip per piece, a noticeable share of a
 * small upload's server time. Bigger ones stream, so memory stays bounded.
 */
/** A small body with a known length, read in one native call; null for any other (stream it with uploadBody). */
export async function wholeBody(request: Request): Promise<Uint8Array | null> {
  const length = Number(request.headers.get("content-length") ?? NaN);
  if (!request.body || !(Number.isSafeInteger(length) && length >= 0 && length <= SMALL_BODY)) return null;
  return request.bytes();
}

export async function uploadBody(request: Request): Promise<AsyncIterable<Uint8Array>> {
  const length = Number(request.headers.get("content-length") ?? NaN);
  if (!request.body) return once(new Uint8Array(0));
  if (!(Number.isSafeInteger(length) && length >= 0 && length <= SMALL_BODY)) return request.body;
  return once(await request.bytes());
}

export async function jsonBody(request: Request): Promise<Record<string, unknown>> {
  const text = await request.text();
  if (text.trim() === "") return {};
  try {
    const v = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new GarretError("RequestError", "the request body must be a JSON object");
}
