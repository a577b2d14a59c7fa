/**
 * GETs that answer a HEAD, so routes can skip reading bodies from storage. Marked on the Request
 * object itself (only the HTTP wrapper marks one), not with a header a client could send too.
 */
const heads = new WeakSet<Request>();

export function markHead(request: Request): void {
  heads.add(request);
}

export function isHead(request: Request): boolean {
  return heads.has(request);
}
