import { realpathSync } from "node:fs";
import { parseArgs } from "./args.ts";
import type { ApiClient } from "../client/api.ts";
import { REMOTE_OPTIONS, resolveRemote } from "./remote.ts";
import { UsageError } from "./errors.ts";
import { GARRET_PATHS, type PinsAnswer, type PinView } from "../api/garret.ts";

/**
 * One JSON call about `cache` to a garret-specific endpoint, with the client's token and TLS trust;
 * a refusal names the alias, the cache and the permission the server says was missing.
 */
export function apiJson<T>(api: ApiClient, cache: string, method: string, path: string, body?: unknown): Promise<T> {
  return api.about(cache, "any", () => api.json<T>(method, path, body));
}

/** A store path given as /nix/store/..., or a symlink to one such as ./result. */
export function storePathArg(arg: string): string {
  if (arg.startsWith("/nix/store/") || !arg.includes("/") && !arg.startsWith(".")) return arg;
  try {
    return realpathSync(arg);
  } catch {
    return arg;
  }
}


const USAGE = "usage: garret pin ALIAS:CACHE NAME PATH | garret pin list ALIAS:CACHE [--json] | garret pin remove ALIAS:CACHE NAME";

export async function pinCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, options: { ...REMOTE_OPTIONS, json: { type: "boolean" } }, allowPositionals: true,
  });
  const [first, ...rest] = positionals;
  const caFile = values["ca-file"];
  if (first === "list") {
    if (rest.length !== 1) throw new UsageError(USAGE);
    const { api, cache } = await resolveRemote(rest[0], { caFile });
    const { pins } = await apiJson<PinsAnswer>(api, cache, "GET", GARRET_PATHS.pins(cache));
    if (values.json) process.stdout.write(`${JSON.stringify(pins, null, 2)}\n`);
    else if (pins.length === 0) process.stdout.write(`no pins in ${cache}\n`);
    else for (const p of pins) process.stdout.write(`${p.name}\t${p.store_path}\n`);
    return;
  }
  if (first === "remove") {
    if (rest.length !== 2) throw new UsageError(USAGE);
    const { api, cache } = await resolveRemote(rest[0], { caFile });
    await apiJson(api, cache, "DELETE", GARRET_PATHS.pin(cache, rest[1]!));
    process.stdout.write(`✓ Removed pin ${rest[1]} from ${cache}\n`);
    return;
  }
  if (positionals.length !== 3) throw new UsageError(USAGE);
  const [spec, name, path] = positionals as [string, string, string];
  const { api, cache } = await resolveRemote(spec, { caFile });
  const pin = await apiJson<PinView>(api, cache, "PUT", GARRET_PATHS.pin(cache, name), {
    store_path: storePathArg(path),
  });
  if (values.json) process.stdout.write(`${JSON.stringify(pin, null, 2)}\n`);
  else process.stdout.write(`✓ Pinned ${pin.store_path} in ${cache} as ${pin.name}\n`);
}
