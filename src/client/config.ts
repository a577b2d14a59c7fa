// Blocking calls: the file is a few hundred bytes, and each asynchronous call was a thread-pool
// round trip; a push that remembered a new cache spent about a millisecond on them.
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { parse, stringify } from "smol-toml";

export interface ServerEntry {
  endpoint: string;
  token?: string;
  /** Extra CA file (PEM) for this server, saved by `garret login --ca-file`; key `ca-file`. */
  caFile?: string;
  /** Caches this client has created, used or pushed to on this server (for `garret cache list`). */
  caches?: string[];
}

interface RawServer {
  endpoint: string;
  token?: string;
  "ca-file"?: string;
  caches?: string[];
}

export interface ClientConfig {
  defaultServer?: string;
  servers: Record<string, ServerEntry>;
}

export class ClientConfigError extends Error {}

/**
 * Remembers (or forgets) that a cache exists on a server, for `garret cache list`. Best effort: a
 * read-only or concurrently edited config never fails the command that called it.
 */
export async function rememberCache(alias: string, cache: string, present: boolean, path = clientConfigPath()): Promise<void> {
  try {
    const config = await loadClientConfig(path);
    const server = config.servers[alias];
    if (!server) return;
    const known = new Set(server.caches ?? []);
    if (known.has(cache) === present) return;
    if (present) known.add(cache);
    else known.delete(cache);
    server.caches = [...known];
    await saveClientConfig(config, path);
  } catch {
    // best effort
  }
}

/**
 * $XDG_CONFIG_HOME/garret/config.toml, by default under ~/.config. Plain string work and $HOME:
 * node:os and node:path cost a client command about 0.3 ms of start-up to load; only a process
 * without $HOME asks node:os.
 */
export function clientConfigPath(env = process.env): string {
  let base = env.XDG_CONFIG_HOME;
  if (!base) {
    const home = env.HOME || (import.meta.require("node:os") as typeof import("node:os")).homedir();
    base = `${home.replace(/\/+$/, "")}/.config`;
  }
  return `${base.replace(/\/+$/, "")}/garret/config.toml`;
}

function parentDir(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

export async function loadClientConfig(path = clientConfigPath()): Promise<ClientConfig> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { servers: {} };
    throw err;
  }
  let raw: { "default-server"?: string; servers?: Record<string, RawServer> };
  try {
    raw = parse(text) as typeof raw;
  } catch (err) {
    throw new ClientConfigError(`${path} is not valid TOML: ${(err as Error).message.split("\n")[0]}`);
  }
  const servers: Record<string, ServerEntry> = {};
  for (const [alias, s] of Object.entries(raw.servers ?? {})) {
    if (!s || typeof s.endpoint !== "string") throw new ClientConfigError(`${path}: server ${alias} has no endpoint`);
    servers[alias] = {
      endpoint: s.endpoint,
      ...(typeof s.token === "string" ? { token: s.token } : {}),
      ...(typeof s["ca-file"] === "string" ? { caFile: s["ca-file"] } : {}),
      ...(Array.isArray(s.caches) ? { caches: s.caches.filter((c) => typeof c === "string") } : {}),
    };
  }
  return { defaultServer: raw["default-server"], servers };
}

/** Writes atomically with mode 0600: the file holds tokens. */
export async function saveClientConfig(config: ClientConfig, path = clientConfigPath()): Promise<void> {
  mkdirSync(parentDir(path), { recursive: true, mode: 0o700 });
  const servers: Record<string, RawServer> = {};
  for (const [alias, s] of Object.entries(config.servers)) {
    servers[alias] = {
      endpoint: s.endpoint,
      ...(s.token ? { token: s.token } : {}),
      ...(s.caFile ? { "ca-file": s.caFile } : {}),
      ...(s.caches && s.caches.length > 0 ? { caches: [...new Set(s.caches)].sort() } : {}),
    };
  }
  const doc: Record<string, unknown> = { servers };
  if (config.defaultServer) doc["default-server"] = config.defaultServer;
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${stringify(doc)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
