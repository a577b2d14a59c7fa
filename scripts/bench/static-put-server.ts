/**
 * The copy bench's second reference: the most trivial HTTP binary cache Nix can push to. It keeps
 * every PUT body in memory under its path and answers GET/HEAD from there; it verifies nothing,
 * stores nothing durably and signs nothing. What `nix copy --to` takes against it is what Nix's
 * own HTTP store costs on this machine, whatever the server does.
 *
 *   bun scripts/bench/static-put-server.ts   (prints "listening on http://127.0.0.1:PORT")
 */
const files = new Map<string, Uint8Array>();

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (req.method === "PUT") {
      files.set(path, await req.bytes());
      return new Response(null, { status: 204 });
    }
    const body = files.get(path);
    if (!body) return new Response("not found", { status: 404 });
    return new Response(req.method === "HEAD" ? null : body, { headers: { "content-length": String(body.length) } });
  },
});
console.log(`listening on http://127.0.0.1:${server.port}`);
