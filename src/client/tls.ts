import { existsSync, readFileSync } from "node:fs";

/** Where distributions keep the system CA bundle (Debian/Ubuntu, Fedora/RHEL, Alpine/macOS-ish, NixOS). */
export const SYSTEM_CA_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/ssl/cert.pem",
  "/etc/static/ssl/certs/ca-certificates.crt",
];

export class TlsConfigError extends Error {}

export interface TlsOptions {
  /** PEM certificates to trust, on top of Bun's bundled roots. */
  ca: string[];
  /** The files they came from, for messages. */
  sources: string[];
}

function readPem(file: string, what: string): string {
  try {
    const text = readFileSync(file, "utf8");
    if (!text.includes("-----BEGIN CERTIFICATE-----")) throw new TlsConfigError(`${what} ${file} holds no PEM certificate`);
    return text;
  } catch (err) {
    if (err instanceof TlsConfigError) throw err;
    throw new TlsConfigError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The CAs an https connection to a garret server trusts: Bun's bundled Mozilla roots, the system
 * store (the first bundle file found), `SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS` and `--ca-file` (or
 * the ca-file saved by `garret login`). Private-CA deployments need only one of the last three.
 */
export function tlsOptions(caFiles: (string | undefined)[], env: NodeJS.ProcessEnv = process.env): TlsOptions {
  // Loaded only here: importing node:tls costs every client command about 2 ms at start, and
  // plain http servers never need it.
  const { rootCertificates } = import.meta.require("node:tls") as typeof import("node:tls");
  const ca: string[] = [...rootCertificates];
  const sources: string[] = [];
  const system = SYSTEM_CA_BUNDLES.find((f) => existsSync(f));
  if (system) {
    try {
      ca.push(readFileSync(system, "utf8"));
      sources.push(system);
    } catch {
      // an unreadable system bundle is not the user's mistake: Bun's roots still apply
    }
  }
  const named: [string | undefined, string][] = [
    [env.SSL_CERT_FILE, "SSL_CERT_FILE"],
    [env.NODE_EXTRA_CA_CERTS, "NODE_EXTRA_CA_CERTS"],
    ...caFiles.map((f) => [f, "--ca-file"] as [string | undefined, string]),
  ];
  for (const [file, what] of named) {
    if (!file) continue;
    ca.push(readPem(file, what));
    sources.push(file);
  }
  return { ca, sources };
}
