import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import type { ListenAddress, ServerConfig } from "../config.ts";
import type { Garret, GcRunRecord } from "../cache/context.ts";
import type { MetaStore } from "../db/types.ts";
import { SqliteMetaStore } from "../db/sqlite.ts";
import { openTokenAuthority } from "../auth/secret.ts";
import { Revocations } from "../auth/revocation.ts";
import { Metrics } from "../cache/metrics.ts";
import { AccessTracker } from "../gc/access.ts";
import { accessFlushInterval } from "../gc/config.ts";
import type { HotBytes } from "../store/hot-bytes.ts";
import type { Storage } from "../store/storage.ts";
import { openMetaStoreForCli } from "./database.ts";
import { openStorageForCli } from "./storage.ts";
import { CliError } from "./errors.ts";
import { lockDataDir } from "./data-lock.ts";

export interface OpenedApp {
  /** The shared context, complete and frozen: nothing is added to it later. */
  g: Readonly<Garret> & { meta: MetaStore; storage: Storage; access: AccessTracker };
  /** Where to listen: port 0 is already resolved, so the public URL in `g` is the real one. */
  listen: ListenAddress;
  /** The token secret was created now (first start). */
  firstStart: boolean;
  close(): Promise<void>;
}

/** A free port on `hostname`, when the operator asked for any (port 0). */
async function freePort(hostname: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, hostname, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

/**
 * Builds everything `garret serve` shares once, from one loaded config: data dir (locked when it
 * holds the SQLite database), storage, metadata store, token authority, access tracking, and the
 * public URL. The listening port is settled first, so the context needs no patching afterwards.
 */
export async function openApp(config: ServerConfig, listen: ListenAddress, opts: { narMemory: HotBytes; log: (line: string) => void }): Promise<OpenedApp> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const lock = config.database.url.startsWith("sqlite:") ? lockDataDir(config.dataDir) : null;
  try {
    const port = listen.port === 0 ? await freePort(listen.hostname) : listen.port;
    const storage = await openStorageForCli(config.storage);
    const meta = await openMetaStoreForCli(config.database);
    if (meta instanceof SqliteMetaStore) meta.checkpointInBackground(opts.log);
    const secret = await openTokenAuthority(config.dataDir, config.auth);
    const access = new AccessTracker(meta, accessFlushInterval());
    const host = listen.hostname.includes(":") ? `[${listen.hostname}]` : listen.hostname;
    const g = Object.freeze({
      meta, storage, access, narMemory: opts.narMemory, metrics: new Metrics(), upload: config.upload, gcRuns: [] as GcRunRecord[],
      tokens: secret.tokens,
      revocations: new Revocations(() => meta.revocations()),
      ingest: { ...config.ingest, packSizeLimit: storage.preferredPackSize },
      publicUrl: (config.publicUrl ?? `http://${host}:${port}`).replace(/\/+$/, ""),
      publicUrlConfigured: config.publicUrl !== null,
      defaultRetention: config.gc.defaultRetention,
    });
    return {
      g, listen: { hostname: listen.hostname, port }, firstStart: secret.created,
      async close() {
        meta.close();
        lock?.release();
      },
    };
  } catch (err) {
    lock?.release();
    throw err;
  }
}

/** Bun's bind error for a taken port, as the one line an operator needs. */
export function listenError(err: unknown, listen: ListenAddress): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE" || /in use/i.test((err as Error).message)) {
    return new CliError(`cannot listen on ${listen.hostname}:${listen.port}: address already in use (another garret serve or another program holds it)`);
  }
  return new CliError(`cannot listen on ${listen.hostname}:${listen.port}: ${(err as Error).message}`);
}
