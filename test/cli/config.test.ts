import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { garretCmd, startServer } from "../helpers/server.ts";
import { run, tempDir } from "../helpers/nix.ts";
import "../helpers/cleanup.ts";

/** A config file in a fresh directory, with `body` as its text. */
function configFile(body: string): string {
  const dir = tempDir("garret-config-");
  const path = join(dir, "garret.toml");
  writeFileSync(path, `data-dir = ${JSON.stringify(join(dir, "data"))}\n${body}`);
  return path;
}

const servers: { stop(): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

describe("one config loader and validator", () => {
  test("config check refuses what serve would refuse, naming the full key", () => {
    const r = run(garretCmd("config", "check", "--config", configFile('[gc]\nretention = "banana"\n')));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("gc.retention");
    expect(r.stderr).toContain("banana");
    expect(r.stderr).not.toContain("    at ");
  });

  test("3mo and 1y are durations in the file, and config print shows their seconds", () => {
    const path = configFile('[gc]\nretention = "3mo"\ngrace = "1h"\ninterval = "1y"\n');
    expect(run(garretCmd("config", "check", "--config", path)).code).toBe(0);
    const printed = run(garretCmd("config", "print", "--config", path));
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain(`retention = ${3 * 2629746}`);
    expect(printed.stdout).toContain(`interval = 31556952`);
  });

  test("GARRET_RETENTION=1y is read by the same grammar", () => {
    const path = configFile("");
    const printed = run(garretCmd("config", "print", "--config", path), { env: { GARRET_RETENTION: "1y" } });
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain("retention = 31556952");
    const bad = run(garretCmd("config", "check", "--config", path), { env: { GARRET_RETENTION: "1 fortnight" } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("gc.retention");
  });

  test("unknown keys are reported with the nearest known key", () => {
    const r = run(garretCmd("config", "check", "--config", configFile('listen-adress = "127.0.0.1:9999"\n[storage]\ntyp = "local"\n')));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("listen-adress: unknown key; did you mean listen?");
    expect(r.stderr).toContain("storage.typ: unknown key; did you mean storage.type?");
  });

  test("serve takes --retention 3mo and GARRET_RETENTION=1y, and refuses banana naming gc.retention", async () => {
    servers.push(await startServer({ args: ["--retention", "3mo", "--gc-interval", "1w"] }));
    servers.push(await startServer({ env: { GARRET_RETENTION: "1y" } }));
    const bad = run(garretCmd("serve", "--listen", "127.0.0.1:0", "--data", tempDir("garret-data-"), "--retention", "banana"));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("gc.retention");
  });

  test("gc reads the same keys: --retention 3mo, [gc] retention from the file", async () => {
    const server = await startServer();
    servers.push(server);
    const ok = run(garretCmd("gc", "--data", server.dataDir, "--dry-run", "--retention", "3mo"));
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    const bad = run(garretCmd("gc", "--data", server.dataDir, "--dry-run"), { env: { GARRET_RETENTION: "3 months" } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("gc.retention");
  });
});
