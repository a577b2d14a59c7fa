import { fstatSync } from "node:fs";
import type cliProgressTypes from "cli-progress";
import type { PushEvents, PushPlan, PushSummary } from "../client/push.ts";
import type { LocalPathInfo } from "../client/nix.ts";
import type { ApiError } from "../client/api.ts";

export type OutputMode = "tty" | "plain" | "json";

/** Bars only on a terminal that can draw them; plain lines when piped; nothing but JSON with --json. */
export function outputMode(json: boolean, env = process.env): OutputMode {
  if (json) return "json";
  if (stdoutIsTerminal() && env.TERM !== "dumb" && !env.GARRET_NO_PROGRESS) return "tty";
  return "plain";
}

/**
 * Whether stdout is a terminal. Only a character device can be one, and asking process.stdout
 * builds Node's stream for it, which cost a client command 2-10 ms at start: pipes and files (CI,
 * scripts, `--json | jq`) are told apart with one fstat.
 */
function stdoutIsTerminal(): boolean {
  try {
    if (!fstatSync(1).isCharacterDevice()) return false;
  } catch {
    return false;
  }
  return process.stdout.isTTY === true;
}

export function fmtBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

const nameOf = (path: string): string => path.slice(path.lastIndexOf("/") + 1);
const shortName = (path: string): string => {
  const n = nameOf(path);
  const s = `${n.slice(0, 8)}…${n.slice(33)}`;
  return s.length > 40 ? `${s.slice(0, 39)}…` : s;
};

export function planLine(cache: string, p: PushPlan): string {
  const parts = [`${p.alreadyCached} already cached`];
  if (p.upstream > 0) parts.push(`${p.upstream} in upstream`);
  return `Pushing ${p.todo} path${p.todo === 1 ? "" : "s"} to ${cache} (${parts.join(", ")})`;
}

export function doneLine(s: PushSummary): string {
  return `Done: ${s.uploaded} uploaded, ${s.deduplicated} deduplicated, ${s.alreadyCached} already cached, `
    + `${s.upstream} in upstream, ${s.failed} failed (${fmtBytes(s.bytes)} in ${s.seconds.toFixed(1)} s)`;
}

const NET_REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "name lookup failed",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};

/** "1 s", "0.5 s", "12 s" ("40 ms" for the short waits of tests): the wait before the next attempt. */
function fmtDelay(ms: number): string {
  if (ms < 100) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return `${s >= 10 || Number.isInteger(s) ? Math.round(s) : s.toFixed(1)} s`;
}

/** The line shown while a call before the uploads waits for a server that is down or failing. */
export function serverRetryLine(server: string, attempt: number, retries: number, err: ApiError, delayMs: number): string {
  const what = err.status === 0
    ? `unreachable (${NET_REASONS[err.netCode ?? ""] ?? err.netCode ?? err.message})`
    : `answered ${err.status} (${err.message})`;
  return `↻ server ${server} ${what}; retry ${attempt}/${retries} in ${fmtDelay(delayMs)}`;
}

export interface Reporter {
  events: Partial<PushEvents>;
  /** Stops the bars and prints the last line (or the JSON summary). */
  finish(summary: PushSummary): void;
  /** Tears the bars down without a summary (the push itself failed). */
  abort(): void;
}

/**
 * The reporter for plain (line per path) and --json output: nothing on screen to redraw. It
 * writes with console.log and console.error, Bun's own buffered writers (flushed at exit, also
 * on process.exit): process.stdout would build Node's stream for it (see stdoutIsTerminal).
 */
export function lineReporter(mode: "plain" | "json", cache: string): Reporter {
  const plain = mode === "plain";
  const began = new Map<string, number>();
  return {
    events: {
      plan: (p) => void (plain && console.log(planLine(cache, p))),
      start: (p) => void (plain && began.set(p.path, performance.now())),
      uploaded: (p, a) => {
        if (!plain) return;
        const secs = ((performance.now() - (began.get(p.path) ?? performance.now())) / 1000).toFixed(2);
        console.log(`✓ ${p.path} (${fmtBytes(p.narSize)}${a.kind === "Deduplicated" ? ", deduplicated" : ""}, ${secs} s)`);
      },
      retry: (p, n, e, ms) => console.error(`↻ ${p.path}: ${e.message}; retry ${n} in ${(ms / 1000).toFixed(1)} s`),
      serverRetry: (...a) => console.error(serverRetryLine(...a)),
      failed: (p, e) => console.error(`✗ ${p.path}: ${e.message}`),
    },
    finish: (s) => console.log(plain ? doneLine(s) : JSON.stringify(s)),
    abort: () => {},
  };
}

/**
 * What a push prints. TTY: one overall bar (paths, bytes, throughput, ETA) and a bar per active
 * upload, finished, retried and failed paths logged above the bars. Plain: one line per path, retries
 * and failures on stderr. JSON: the summary only on stdout, retries and failures on stderr.
 */
export async function pushReporter(mode: OutputMode, cache: string, stream?: NodeJS.WriteStream): Promise<Reporter> {
  if (mode !== "tty") return lineReporter(mode, cache);
  // Only now: a default parameter of process.stdout built Node's stream for plain and --json runs
  // too, 1.5-2 ms of every scripted push (see stdoutIsTerminal).
  const out = stream ?? process.stdout;
  const err = (line: string) => process.stderr.write(`${line}\n`);

  // Loaded only for a terminal: scripts and CI (plain or --json) start about 2 ms sooner.
  const cliProgress = (await import("cli-progress")).default;
  const multibar = new cliProgress.MultiBar({
    stream: out,
    hideCursor: true,
    clearOnComplete: false,
    autopadding: true,
    barsize: 24,
    fps: 8,
    format: (options, params, payload) => {
      const bar = options.barCompleteString!.slice(0, Math.round(params.progress * options.barsize!))
        + options.barIncompleteString!.slice(0, options.barsize! - Math.round(params.progress * options.barsize!));
      if (payload.kind === "path") return `  ${payload.name.padEnd(40)} ${bar} ${fmtBytes(params.value)}/${fmtBytes(params.total)}`;
      const secs = Math.max(0.001, (performance.now() - started) / 1000);
      const rate = bytes / secs;
      const eta = rate > 0 && params.total > params.value ? `ETA ${fmtEta((params.total - params.value) / rate)}` : "";
      return `${bar} ${done}/${total} paths | ${fmtBytes(params.value)}/${fmtBytes(params.total)} | ${fmtBytes(rate)}/s ${eta}`;
    },
  }, cliProgress.Presets.shades_classic);
  let started = performance.now();
  let overall: cliProgressTypes.SingleBar | null = null;
  let done = 0;
  let total = 0;
  let bytes = 0;
  const active = new Map<string, { bar: cliProgressTypes.SingleBar; sent: number }>();
  // MultiBar.stop() draws the bars one last time but not the lines logged since the last redraw:
  // the last path's ✓ was lost. One more redraw writes them first.
  const stop = () => {
    if (overall) (multibar as unknown as { update(): void }).update();
    multibar.stop();
  };
  const close = (p: LocalPathInfo) => {
    const a = active.get(p.path);
    if (a) {
      multibar.remove(a.bar);
      active.delete(p.path);
    }
  };
  return {
    events: {
      plan: (p) => {
        out.write(`${planLine(cache, p)}\n`);
        started = performance.now();
        total = p.todo;
        if (p.todo > 0) overall = multibar.create(p.todoBytes, 0, { kind: "overall" });
      },
      start: (p) => {
        const prev = active.get(p.path);
        if (prev) {
          bytes -= prev.sent;
          overall?.increment(-prev.sent);
          multibar.remove(prev.bar);
        }
        active.set(p.path, { bar: multibar.create(p.narSize, 0, { kind: "path", name: shortName(p.path) }), sent: 0 });
      },
      progress: (p, n) => {
        const a = active.get(p.path);
        if (!a) return;
        a.sent += n;
        bytes += n;
        a.bar.increment(n);
        overall?.increment(n);
      },
      // Logged before the bar goes: removing it redraws, which writes the logged lines out.
      uploaded: (p, a) => {
        done++;
        multibar.log(`✓ ${p.path} (${fmtBytes(p.narSize)}${a.kind === "Deduplicated" ? ", deduplicated" : ""})\n`);
        close(p);
      },
      retry: (p, n, e, ms) => multibar.log(`↻ ${p.path}: ${e.message}; retry ${n} in ${(ms / 1000).toFixed(1)} s\n`),
      // Before the plan: no bars yet, so nothing would draw a logged line.
      serverRetry: (...a) => err(serverRetryLine(...a)),
      failed: (p, e) => {
        done++;
        multibar.log(`✗ ${p.path}: ${e.message}\n`);
        close(p);
      },
    },
    finish: (s) => {
      stop();
      out.write(`${doneLine(s)}\n`);
    },
    abort: () => stop(),
  };
}

function fmtEta(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
