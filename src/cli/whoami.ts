import { parseArgs } from "./args.ts";
import { ApiClient, ApiError } from "../client/api.ts";
import { TlsConfigError } from "../client/tls.ts";
import type { WhoamiAnswer } from "../api/garret.ts";
import { REMOTE_OPTIONS, savedServer } from "./remote.ts";
import { CliError, UsageError } from "./errors.ts";

/** "in 3 days", "in 5 hours", "2 hours ago". */
function relative(seconds: number): string {
  const abs = Math.abs(seconds);
  const [n, unit] = abs >= 2 * 86400 ? [Math.floor(abs / 86400), "days"] : abs >= 7200 ? [Math.floor(abs / 3600), "hours"] : [Math.max(1, Math.floor(abs / 60)), "minutes"];
  return seconds >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

/** `garret whoami [ALIAS]`: the server, and what it says this client's token is. */
export async function whoamiCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...REMOTE_OPTIONS, json: { type: "boolean" } } });
  if (positionals.length > 1) throw new UsageError("usage: garret whoami [ALIAS] [--json]");
  const { alias, server } = await savedServer(positionals[0]);
  let answer: WhoamiAnswer;
  try {
    const api = new ApiClient(server, { caFile: values["ca-file"], alias });
    answer = await api.whoami();
  } catch (err) {
    if (err instanceof TlsConfigError) throw new CliError(err.message);
    if (err instanceof ApiError && err.status === 401) {
      throw new CliError(`server ${alias} (${server.endpoint}) refused the token: ${err.message.replace(/\.$/, "")}; run garret login ${alias} URL TOKEN with a valid token`);
    }
    if (err instanceof ApiError && err.status === 404) {
      throw new CliError(`server ${alias} (${server.endpoint}) does not answer whoami: not a garret server, or one older than this client`);
    }
    throw err;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ alias, endpoint: server.endpoint, ...answer }, null, 2)}\n`);
    return;
  }
  const lines = [`Server:      ${alias} (${server.endpoint}, garret ${answer.version})`];
  const t = answer.token;
  if (!t) {
    lines.push(`Token:       none (anonymous: public caches only${server.token ? "" : `; garret login ${alias} URL TOKEN saves one`})`);
  } else {
    const now = Date.now() / 1000;
    lines.push(`Sub:         ${t.sub}`);
    if (t.id) lines.push(`Token id:    ${t.id}`);
    if (t.oidc_issuer) lines.push(`OIDC issuer: ${t.oidc_issuer}`);
    lines.push(`Expires:     ${new Date(t.expires_at * 1000).toISOString()} (${relative(t.expires_at - now)})`);
    if (t.permissions.length === 0) lines.push("Permissions: none");
    else {
      lines.push("Permissions: (where patterns overlap, the first that matches a cache decides)");
      const width = Math.max(...t.permissions.map((p) => p.pattern.length));
      for (const p of t.permissions) lines.push(`  ${p.pattern.padEnd(width)}  ${p.allows.length > 0 ? p.allows.join(", ") : "nothing"}`);
    }
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}
