/**
 * `[database] url` / `pool-size`, GARRET_DATABASE_URL and --database-url (issue 13): a bad URL or
 * an unreachable database stops the command with one line and exit code 2; the password never
 * shows in `config print`.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, tempDir } from "../helpers/nix.ts";
import { garretCmd } from "../helpers/server.ts";

const oneLine = (r: { stderr: string }) => r.stderr.trim().split("\n");

test("a bad database URL stops serve and gc with one line, exit 2", () => {
  const data = tempDir("garret-data-");
  for (const cmd of [["serve", "--listen", "127.0.0.1:0"], ["gc"]]) {
    const r = run(garretCmd(...cmd, "--data", data, "--database-url", "mysql://root@localhost/x"));
    expect(r.code).toBe(2);
    expect(oneLine(r)).toHaveLength(1);
    expect(r.stderr).toContain("sqlite:// or postgres://");
  }
});

test("an unreachable PostgreSQL stops serve with one line, exit 2, without the password", () => {
  // No --data flag (GARRET_DATA instead), so the suite's own engine choice does not apply here.
  const r = run(garretCmd("serve", "--listen", "127.0.0.1:0"),
    { env: { GARRET_DATA: tempDir("garret-data-"), GARRET_DATABASE_URL: "postgres://garret:hunter2@127.0.0.1:1/garret" } });
  expect(r.code).toBe(2);
  expect(oneLine(r)).toHaveLength(1);
  expect(r.stderr).toContain("127.0.0.1:1");
  expect(r.stderr).not.toContain("hunter2");
});

test("[database] in the config file: config print hides the password; pool-size is checked", () => {
  const dir = tempDir("garret-cfg-");
  const file = join(dir, "garret.toml");
  writeFileSync(file, '[database]\nurl = "postgres://garret:hunter2@db.internal:5432/garret"\npool-size = 4\n');
  const printed = run(garretCmd("config", "print", "--config", file));
  expect(printed.code).toBe(0);
  expect(printed.stdout).toContain("postgres://garret:<redacted>@db.internal:5432/garret");
  expect(printed.stdout).toContain("pool-size = 4");
  expect(printed.stdout).not.toContain("hunter2");
  writeFileSync(file, '[database]\npool-size = 0\n');
  const bad = run(garretCmd("config", "check", "--config", file));
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("database.pool-size");
});
