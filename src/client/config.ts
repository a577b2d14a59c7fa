import { mkdir, readFile, writeFile, rename, chmod } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parse, stringify } from "smol-toml";

export interface ServerEntry {
  endpoint: string;
  token?: string;
}

export interface ClientConfig {
  defaultServer?: string;
  servers: Record<string, ServerEntry>;
}

export function clientConfigPath(env = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== "" ? env.XDG_CONFIG_HOME : join(homedir(), ".config");
  return join(base, "garret", "config.toml");
}

export async function loadClientConfig(path = clientConfigPath()): Promise<ClientConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { servers: {} };
    throw err;
  }
  const raw = parse(text) as { "default-server"?: string; servers?: Record<string, ServerEntry> };
  return { defaultServer: raw["default-server"], servers: raw.servers ?? {} };
}

/** Writes atomically with mode 0600: the file holds tokens. */
export async function saveClientConfig(config: ClientConfig, path = clientConfigPath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const doc: Record<string, unknown> = { servers: config.servers };
  if (config.defaultServer) doc["default-server"] = config.defaultServer;
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${stringify(doc)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
