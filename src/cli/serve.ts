import { rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "./args.ts";
import { ConfigError, databasePath, parseListen, serverConfig, type ListenAddress, type ServerConfig } from "../config.ts";
import type { TokenAuthority } from "../auth/token.ts";
import { listenError, openApp } from "./app.ts";
import { shutdown, startServer } from "../server/serve.ts";
import { UsageError } from "./errors.ts";
import { SERVE_GC_OPTIONS, startCollector } from "../gc/periodic.ts";
import { runsLong } from "./long-running.ts";
import { DEFAULT_ALIAS, selfCommand } from "./invocation.ts";
import { DEFAULT_CACHE_NAME } from "./setup-config.ts";
import { DEFAULT_NAR_MEMORY_MIB, HOT_NAR_MAX, HotBytes } from "../store/hot-bytes.ts";

function loadConfig(argv: string[]): { config: ServerConfig; listen: ListenAddress } {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string" }, listen: { type: "string" }, data: { type: "string" },
      "public-url": { type: "string" }, "database-url": { type: "string" }, compression: { type: "string" }, "compression-level": { type: "string" },
      "log-format": { type: "string" },
      ...SERVE_GC_OPTIONS,
    },
  });
  try {
    const config = serverConfig({
      config: values.config, listen: values.listen, data: values.data, publicUrl: values["public-url"],
      compression: values.compression, compressionLevel: values["compression-level"], databaseUrl: values["database-url"],
      logFormat: values["log-format"],
      retention: values.retention, gcGrace: values["gc-grace"], gcInterval: values["gc-interval"],
    });
    return { config, listen: parseListen(config.listen) };
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

export async function serveCommand(argv: string[]): Promise<void> {
  runsLong();
  const { config, listen } = loadConfig(argv);
  const narMemory = narMemoryFromEnv();
  const writer = lineWriter((text) => process.stderr.write(text));
  const { flush } = writer;
  // With --log-format json every line is a JSON object: request lines are built as one, the
  // server's other lines are wrapped.
  const log = config.logFormat === "json"
    ? (line: string) => writer.log(line.startsWith("{") ? line : JSON.stringify({ time: new Date().toISOString(), msg: line }))
    : writer.log;
  const app = await openApp(config, listen, { narMemory, log });
  const { g } = app;
  const collector = startCollector(g, config, log);
  let running;
  try {
    running = startServer(g, app.listen, log, { logFormat: config.logFormat, metricsToken: config.metricsToken });
  } catch (err) {
    await collector.stop();
    await app.close();
    throw listenError(err, app.listen);
  }
  warnIfDataDirIsShared(config.dataDir, log);
  if (app.firstStart) await handOverRootToken(g.tokens, g.publicUrl, config.dataDir, log);
  log(`garret listening on http://${app.listen.hostname}:${running.server.port} (data: ${config.dataDir}, storage: ${g.storage.kind})`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    await shutdown(running, SHUTDOWN_GRACE_MS, log);
    await collector.stop();
    await app.close();
    log("stopped");
    flush();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

/**
 * The server log, written once per turn of the event loop: a write per request line cost about 4%
 * of the CPU of serving small NARs. Lines keep their order; `flush` writes what is pending now.
 */
function lineWriter(write: (text: string) => void): { log(line: string): void; flush(): void } {
  let pending: string[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    write(text);
  };
  return {
    log(line) {
      pending.push(`${line}\n`);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}

/** The in-memory budget for small NARs served lately: GARRET_NAR_MEMORY_MIB, 0 for none. */
function narMemoryFromEnv(env = process.env): HotBytes {
  const raw = env.GARRET_NAR_MEMORY_MIB;
  const mib = raw === undefined || raw === "" ? DEFAULT_NAR_MEMORY_MIB : Number(raw);
  if (!Number.isFinite(mib) || mib < 0) throw new UsageError(`GARRET_NAR_MEMORY_MIB must be a number of MiB (0 for none), not ${JSON.stringify(raw)}`);
  return new HotBytes(Math.floor(mib * 1024 * 1024), HOT_NAR_MAX);
}

/** Uploads in flight get this long to finish on SIGTERM before they are cut. */
const SHUTDOWN_GRACE_MS = 6000;

/** The data dir holds the token secret and every cache's signing key: say so if others can read it. */
function warnIfDataDirIsShared(dataDir: string, log: (line: string) => void): void {
  const mode = statSync(dataDir).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    log(`warning: the data dir ${dataDir} is open to other users (mode ${mode.toString(8).padStart(4, "0")}); it holds signing keys and the token secret: chmod 700 ${dataDir}`);
  }
}

/** Where the first start leaves the root token when nobody is at a terminal to read it. */
export const ROOT_TOKEN_FILE = "root-token";

/**
 * On the very first start, hand the operator a root token and the next steps, once. Only a
 * terminal gets the token itself: a service manager keeps stderr in its journal for anyone who
 * may read logs, so there it goes to a 0600 file in the data dir, and the log names only the file.
 */
async function handOverRootToken(tokens: TokenAuthority, url: string, dataDir: string, log: (line: string) => void): Promise<void> {
  const root = await tokens.mint("root", 365 * 86400, {
    "*": { r: 1, w: 1, d: 1, cc: 1, cr: 1, cq: 1, cd: 1 },
  });
  // Runnable as printed: `npx garret` from a checkout (npm start), the alias and cache of setup and the README.
  const garret = selfCommand();
  const target = `${DEFAULT_ALIAS}:${DEFAULT_CACHE_NAME}`;
  const nextSteps = [
    "Next steps (login asks for the token; paste it there):",
    `    ${garret} login ${DEFAULT_ALIAS} ${url}`,
    `    ${garret} cache create ${target}`,
    `    ${garret} push ${target} ./result`,
    `    ${garret} use ${target}`,
  ];
  if (process.stderr.isTTY) {
    process.stderr.write([
      "",
      `garret: first start, created ${dataDir}. A root token with every permission, valid for a year`,
      `(shown only now; mint narrower ones with \`${garret} token create\`), on the next line alone:`,
      "",
      // Nothing else on its line: a triple click or a double click copies exactly the token.
      root,
      "",
      ...nextSteps,
      "",
    ].join("\n") + "\n");
    return;
  }
  const file = join(dataDir, ROOT_TOKEN_FILE);
  // A file left from an earlier secret holds a token nothing accepts any more.
  rmSync(file, { force: true });
  writeFileSync(file, `${root}\n`, { mode: 0o600, flag: "wx" });
  log(`garret: first start, created ${dataDir}. A root token with every permission, valid for a year, is in ${file} (mode 0600): read it, then delete the file.`);
  for (const line of nextSteps) log(line);
}
