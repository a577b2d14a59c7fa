import { mkdir } from "node:fs/promises";
import { parseArgs } from "node:util";
import { serverConfig, databasePath, storagePath, type ServerConfig } from "../config.ts";
import { UsageError } from "./errors.ts";
import { SqliteMetaStore } from "../db/sqlite.ts";
import { LocalStorage } from "../store/local.ts";
import { TokenAuthority } from "../auth/token.ts";
import { loadOrCreateTokenSecret } from "../auth/secret.ts";
import { parseListen, startServer, type ListenAddress } from "../server/serve.ts";
import type { Garret } from "../cache/context.ts";

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: "string" }, data: { type: "string" }, "public-url": { type: "string" },
      compression: { type: "string" }, "compression-level": { type: "string" },
    },
  });
  let config: ServerConfig;
  let listen: ListenAddress;
  try {
    config = serverConfig({
      listen: values.listen, data: values.data, publicUrl: values["public-url"],
      compression: values.compression, compressionLevel: values["compression-level"],
    });
    listen = parseListen(config.listen);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const storage = new LocalStorage(storagePath(config.dataDir));
  await storage.init();
  const meta = new SqliteMetaStore(databasePath(config.dataDir));
  const tokens = new TokenAuthority(await loadOrCreateTokenSecret(config.dataDir));
  const g: Garret = { meta, storage, tokens, ingest: config.ingest, publicUrl: "" };
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const server = startServer(g, listen, log);
  g.publicUrl = (config.publicUrl ?? `http://${listen.hostname}:${server.port}`).replace(/\/+$/, "");
  log(`garret listening on http://${listen.hostname}:${server.port} (data: ${config.dataDir})`);

  const stop = () => {
    server.stop();
    meta.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
