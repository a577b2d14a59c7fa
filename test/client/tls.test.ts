/**
 * TLS trust (issue 6): a cache behind a private CA works with --ca-file, SSL_CERT_FILE or
 * NODE_EXTRA_CA_CERTS, and fails with one readable line without them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireNix, runOk, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, garretCmd, startServer, type TestServer } from "../helpers/server.ts";
import { loginClient, runAsync, runAsyncOk, startProxy, wideClosure, type Client, type Proxy } from "./helpers.ts";

requireNix();

let server: TestServer;
let client: Client;
let proxy: Proxy;
let caFile: string;
const cache = `tls-${uniqueTag()}`;
// No trust from the machine's environment: only what each test passes.
const noEnvCa = { SSL_CERT_FILE: "", NODE_EXTRA_CA_CERTS: "" };

/** A private CA and a certificate for 127.0.0.1 signed by it. */
function makeCa(): { ca: string; cert: string; key: string } {
  const dir = tempDir("garret-ca-");
  const o = (...args: string[]) => runOk(["openssl", ...args]);
  o("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=garret test CA", "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.pem"));
  o("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
    "-keyout", join(dir, "srv.key"), "-out", join(dir, "srv.csr"));
  writeFileSync(join(dir, "ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  o("x509", "-req", "-in", join(dir, "srv.csr"), "-CA", join(dir, "ca.pem"), "-CAkey", join(dir, "ca.key"),
    "-CAcreateserial", "-days", "2", "-extfile", join(dir, "ext"), "-out", join(dir, "srv.pem"));
  return { ca: join(dir, "ca.pem"), cert: readFileSync(join(dir, "srv.pem"), "utf8"), key: readFileSync(join(dir, "srv.key"), "utf8") };
}

beforeAll(async () => {
  server = await startServer();
  client = loginClient(server);
  await createCache(server.url, client.token, cache);
  const pki = makeCa();
  caFile = pki.ca;
  proxy = startProxy(server.url, () => null, { cert: pki.cert, key: pki.key });
  expect(proxy.url).toStartWith("https://");
  // Saved without the check: the tests below are about commands run before the CA is trusted.
  runOk(garretCmd("login", "tls", proxy.url, client.token, "--no-check"), { env: client.env });
});

afterAll(async () => {
  proxy?.stop();
  await server?.stop();
});

const info = (env: Record<string, string>, ...args: string[]) =>
  runAsync(garretCmd("cache", "info", `tls:${cache}`, "--json", ...args), { env: { ...client.env, ...noEnvCa, ...env } });

describe("TLS with a private CA", () => {
  test("without trust: one readable line that says what to do", async () => {
    const r = await info({});
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`error: cannot reach ${proxy.url}: `);
    expect(r.stderr).toContain("pass --ca-file FILE, or set SSL_CERT_FILE or NODE_EXTRA_CA_CERTS) (TlsError)");
    expect(r.ms).toBeLessThan(1000); // not retried: trying again will not make the certificate trusted
  });

  test("--ca-file, SSL_CERT_FILE and NODE_EXTRA_CA_CERTS each make it work", async () => {
    for (const [env, args] of [[{}, ["--ca-file", caFile]], [{ SSL_CERT_FILE: caFile }, []], [{ NODE_EXTRA_CA_CERTS: caFile }, []]] as const) {
      const r = await info(env, ...args);
      expect(r.stderr).toBe("");
      expect(JSON.parse(r.stdout).public_key).toStartWith(`${cache}-1:`);
    }
  });

  test("login --ca-file remembers the CA; push streams over TLS", async () => {
    const env = { ...client.env, ...noEnvCa, XDG_CONFIG_HOME: tempDir("garret-client-") };
    await runAsyncOk(garretCmd("login", "tls", proxy.url, client.token, "--ca-file", caFile), { env });
    const { top } = wideClosure(uniqueTag(), 4, 300000);
    const r = await runAsyncOk(garretCmd("push", `tls:${cache}`, "--json", "-j", "4", top), { env });
    expect(JSON.parse(r.stdout)).toMatchObject({ closure: 8, failed: 0 });
    expect(JSON.parse(r.stdout).uploaded + JSON.parse(r.stdout).deduplicated).toBe(8);
  });

  test("a CA file that is missing or not PEM is a one-line error", async () => {
    const missing = await info({}, "--ca-file", "/nonexistent/ca.pem");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("error: cannot read --ca-file /nonexistent/ca.pem: ENOENT\n");
    const junk = join(tempDir(), "junk.pem");
    writeFileSync(junk, "hello\n");
    const bad = await info({ SSL_CERT_FILE: junk });
    expect(bad.stderr).toBe(`error: SSL_CERT_FILE ${junk} holds no PEM certificate\n`);
  });
});
