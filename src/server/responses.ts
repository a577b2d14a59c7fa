import { GarretError, STATUS_OF } from "../errors.ts";

/** The one shape of every error answer (Attic's): status, stable code, readable message. */
export function errorResponse(code: number, error: string, message: string): Response {
  return Response.json({ code, error, message }, { status: code });
}

/** A domain error becomes its stable answer; anything else is a 500 whose details stay in the log. */
export function toResponse(err: unknown): Response {
  if (err instanceof GarretError) return errorResponse(STATUS_OF[err.code], err.code, err.message);
  console.error(`internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  return errorResponse(500, "InternalServerError", "The server failed to handle this request.");
}

export const text = (body: string, type: string, headers: Record<string, string> = {}): Response =>
  new Response(body, { headers: { "content-type": type, ...headers } });
