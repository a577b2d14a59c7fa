/**
 * Threat (issue 12): path confusion through the Host header. The router looked for the path at a
 * fixed offset, so with a 1-3 character Host `GET /zzzz/b1/nix-cache-info` was served as
 * `/b1/nix-cache-info` and `/pub/_api/...` as `/_api/...`, past a reverse proxy's path rules.
 * Whatever the Host (odd, empty, absent with HTTP/1.0), a request is routed on its own path.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "node:net";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let port: number;

beforeAll(async () => {
  server = await startServer();
  port = Number(new URL(server.url).port);
  await createCache(server.url, mintToken(server.dataDir, "--create-cache", "*"), "b1", { is_public: true });
});

afterAll(async () => {
  await server?.stop();
});

/** Sends one raw request and returns the status code and body. */
function raw(requestLine: string, host: string | null): Promise<{ status: number; body: string }> {
  const version = requestLine.endsWith("HTTP/1.0");
  const head = [requestLine, ...(host === null ? [] : [`Host: ${host}`]), ...(version ? [] : ["Connection: close"]), "", ""].join("\r\n");
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(head));
    let data = "";
    socket.on("data", (b) => (data += b.toString("latin1")));
    socket.on("error", reject);
    socket.on("end", () => {
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf("\r\n\r\n") + 4) });
    });
  });
}

const HOSTS: [string, string | null, string][] = [
  ["one character", "x", "HTTP/1.1"], ["two characters", "xy", "HTTP/1.1"], ["three characters", "xyz", "HTTP/1.1"],
  ["empty", "", "HTTP/1.1"], ["absent, HTTP/1.0", null, "HTTP/1.0"], ["a normal one", "cache.example.com", "HTTP/1.1"],
];

for (const [what, host, version] of HOSTS) {
  test(`Host ${what}: a request is routed on its own path`, async () => {
    const real = await raw(`GET /b1/nix-cache-info ${version}`, host);
    expect([what, real.status]).toEqual([what, 200]);
    expect(real.body).toContain("StoreDir: /nix/store");

    const shifted = await raw(`GET /zzzz/b1/nix-cache-info ${version}`, host);
    expect([what, shifted.status]).toEqual([what, 404]);
    expect(shifted.body).not.toContain("StoreDir");

    const api = await raw(`GET /pub/_api/v1/cache-config/b1 ${version}`, host);
    expect([what, api.status]).toEqual([what, 404]);
    expect(api.body).not.toContain("public_key");
  });
}
