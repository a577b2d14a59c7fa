import { mkdir } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ConfigError, databasePath, serverConfig, type ServerConfig } from "../config.ts";
import { SqliteMetaStore } from "../db/sqlite.ts";
import { openStorage } from "../store/open.ts";
import { StorageError } from "../store/storage.ts";
import { TokenAuthority } from "../auth/token.ts";
import { loadOrCreateTokenSecret } from "../auth/secret.ts";
import { parseListen, startServer, type ListenAddress } from "../server/serve.ts";
import type { Garret } from "../cache/context.ts";
import { CliError, UsageError } from "./errors.ts";

function loadConfig(argv: string[]): { config: ServerConfig; listen: ListenAddress } {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string" }, listen: { type: "string" }, data: { type: "string" },
      "public-url": { type: "string" }, compression: { type: "string" }, "compression-level": { type: "string" },
    },
  });
  try {
    const config = serverConfig({
      config: values.config, listen: values.listen, data: values.data, publicUrl: values["public-url"],
      compression: values.compression, compressionLevel: values["compression-level"],
    });
    return { config, listen: parseListen(config.listen) };
  } catch (err) {
    if (err instanceof ConfigError || err instanceof Error) throw new UsageError(err.message);
    throw err;
  }
}

export async function serveCommand(argv: string[]): Promise<void> {
  const { config, listen } = loadConfig(argv);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  let storage;
  try {
    storage = await openStorage(config.storage);
  } catch (err) {
    if (err instanceof StorageError) throw new CliError(`storage: ${err.message}`);
    throw err;
  }
  const meta = new SqliteMetaStore(databasePath(config.dataDir));
  const tokens = new TokenAuthority(await loadOrCreateTokenSecret(config.dataDir));
  const g: Garret = { meta, storage, tokens, ingest: config.ingest, publicUrl: "" };
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const server = startServer(g, listen, log);
  g.publicUrl = (config.publicUrl ?? `http://${listen.hostname}:${server.port}`).replace(/\/+$/, "");
  log(`garret listening on http://${listen.hostname}:${server.port} (data: ${config.dataDir}, storage: ${storage.kind})`);

  const stop = () => {
    server.stop();
    meta.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
