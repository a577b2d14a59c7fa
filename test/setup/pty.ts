import type { Subprocess } from "bun";

/** Strips the ANSI sequences clack draws with (cursor moves, colours, erase). */
export function stripAnsi(s: string): string {
  return s
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "")
    .replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, "")
    .replace(/\x1b[()][0-9A-Za-z]/g, "")
    .replace(/\x1b[=>78]/g, "");
}

export const KEY = { enter: "\r", down: "\x1b[B", up: "\x1b[A", ctrlC: "\x03", backspace: "\x7f" } as const;

/**
 * A command on a pseudo-terminal: util-linux `script` allocates it and copies our pipe to it, so
 * the program sees a real TTY (raw mode, keypresses). Tests wait for each prompt's text before
 * typing, never for a fixed time.
 */
export class Pty {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  private raw = "";
  private mark = 0;
  private reader: Promise<void> = Promise.resolve();

  constructor(argv: string[], opts: { cwd: string; env?: Record<string, string> }) {
    const quoted = argv.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    // A known window size: clack wraps to the terminal's width.
    const cmd = `stty cols 160 rows 60 2>/dev/null; exec ${quoted}`;
    const proc = Bun.spawn(["script", "-q", "-e", "-c", cmd, "/dev/null"], {
      stdin: "pipe", stdout: "pipe", stderr: "pipe", cwd: opts.cwd,
      env: { ...process.env, TERM: "xterm-256color", ...opts.env },
    });
    this.proc = proc;
    this.reader = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of proc.stdout) this.raw += dec.decode(chunk, { stream: true });
    })();
  }

  /** Everything shown so far, without escape sequences. */
  get screen(): string {
    return stripAnsi(this.raw);
  }

  /** Waits until `text` appears after the previous match. */
  async expect(text: string, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen;
      const i = s.indexOf(text, this.mark);
      if (i >= 0) {
        this.mark = i + text.length;
        return;
      }
      if (Date.now() > deadline || this.proc.exitCode !== null) {
        await Bun.sleep(50);
        throw new Error(`timed out waiting for ${JSON.stringify(text)}${this.proc.exitCode !== null ? ` (exited ${this.proc.exitCode})` : ""}; screen after the last match:\n${this.screen.slice(this.mark)}`);
      }
      await Bun.sleep(15);
    }
  }

  send(keys: string): void {
    this.proc.stdin.write(keys);
    this.proc.stdin.flush();
  }

  /** Waits for the prompt, then types the answer and Enter. */
  async answer(prompt: string, keys: string): Promise<void> {
    await this.expect(prompt);
    this.send(keys + KEY.enter);
  }

  async exited(timeoutMs = 15000): Promise<number> {
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), timeoutMs);
    const code = await this.proc.exited;
    clearTimeout(timer);
    await this.reader;
    return code;
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

export type { Subprocess };
