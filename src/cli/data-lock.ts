import { openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { CliError } from "./errors.ts";

export const LOCK_FILE = "serve.lock";

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * Two servers on one SQLite data dir each keep their own caches of what the database holds and
 * each would run the collector on the same files: the second `garret serve` is refused. The lock
 * is a file holding the pid, created exclusively; one left by a process that died (SIGKILL,
 * power loss) is taken over. Replicas share a PostgreSQL database instead, which needs no lock.
 */
export function lockDataDir(dataDir: string): { release(): void } {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number(readFileSync(path, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new CliError(`the data dir ${dataDir} is in use by another garret serve (pid ${pid}); `
          + "one SQLite data dir takes one server: to run several, run replicas on PostgreSQL ([database] url)");
      }
      rmSync(path, { force: true }); // left by a process that is gone
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return {
      release() {
        try {
          if (readFileSync(path, "utf8").trim() === String(process.pid)) rmSync(path, { force: true });
        } catch { /* already gone */ }
      },
    };
  }
  throw new CliError(`cannot lock the data dir ${dataDir} (${path} keeps coming back)`);
}
