import { CliError } from "./errors.ts";

/** Whether we can ask the person at the keyboard. */
export const interactive = (): boolean => process.stdin.isTTY === true;

/** Reads one line from the terminal in raw mode, echoing `mask` (or nothing) per character. */
function readRaw(question: string, echo: boolean): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = "";
    const finish = (): void => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
    };
    const onData = (chunk: string): void => {
      // Bracketed paste markers are not part of the text.
      for (const ch of chunk.replace(/\x1b\[20[01]~/g, "")) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") {
          finish();
          resolve(value);
          return;
        }
        if (ch === "\u0003") {
          finish();
          reject(new CliError("cancelled"));
          return;
        }
        if (ch === "\u007f" || ch === "\b") {
          if (value.length > 0 && echo) process.stderr.write("\b \b");
          value = value.slice(0, -1);
          continue;
        }
        if (ch < " ") continue;
        value += ch;
        if (echo) process.stderr.write(ch);
      }
    };
    stdin.on("data", onData);
  });
}

/** Asks for a secret on the terminal without echoing it. */
export function promptHidden(question: string): Promise<string> {
  return readRaw(question, false);
}

/** Asks a yes/no question on the terminal; anything but y/yes is no. */
export async function confirm(question: string): Promise<boolean> {
  const answer = (await readRaw(`${question} [y/N] `, true)).trim().toLowerCase();
  return answer === "y" || answer === "yes";
}
