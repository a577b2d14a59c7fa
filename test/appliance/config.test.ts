/** Issue 7: config file validation, printing with secrets hidden, precedence. */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "smol-toml";
import { run, tempDir } from "../helpers/nix.ts";
import { garretCmd } from "../helpers/server.ts";

function configFile(text: string): string {
  const path = join(tempDir("garret-conf-"), "garret.toml");
  writeFileSync(path, text);
  return path;
}

describe("broken configs: one line naming the key, exit code 2", () => {
  const cases: [string, string, string][] = [
    ["invalid TOML", "listen = \n", "invalid TOML"],
    ["unknown storage type", '[storage]\ntype = "ftp"\n', 'storage.type: must be "local" or "s3", got "ftp"'],
    ["s3 without a bucket", '[storage]\ntype = "s3"\n', 'storage.bucket: required when storage.type = "s3"'],
    ["unknown compression", '[compression]\ntype = "lz4"\n', "compression.type: must be one of zstd, br, none"],
    ["compression level out of range", '[compression]\nlevel = 99\n', "compression.level: must be an integer 1..19 for zstd"],
    ["bad S3 endpoint", '[storage]\ntype = "s3"\nbucket = "b"\nendpoint = "nowhere"\n', "storage.endpoint: must be an http(s) URL"],
    ["bad listen address", 'listen = "8080"\n', "listen: address must be HOST:PORT"],
    ["wrong value type", "listen = 8080\n", "listen: must be a string"],
  ];
  for (const [name, text, message] of cases) {
    test(name, () => {
      const path = configFile(text);
      for (const cmd of [garretCmd("config", "check", "--config", path), garretCmd("serve", "--config", path)]) {
        const r = run(cmd, { timeout: 15000 });
        expect(r.code).toBe(2);
        const lines = r.stderr.trim().split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toStartWith("error: ");
        expect(lines[0]).toContain(message);
      }
    });
  }

  test("a missing config file is named", () => {
    const r = run(garretCmd("config", "check", "--config", "/nonexistent/garret.toml"));
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("error: config file /nonexistent/garret.toml: not found");
  });
});

describe("config print and precedence", () => {
  const text = [
    'listen = "127.0.0.1:9000"',
    'data-dir = "/srv/garret"',
    "[compression]", 'type = "br"',
    "[storage]", 'type = "s3"', 'bucket = "cache"', 'endpoint = "http://minio:9000"',
    'access-key-id = "AKIAEXAMPLE"', 'secret-access-key = "super-secret-value"', "",
  ].join("\n");

  test("prints the effective config with secrets redacted", () => {
    const r = run(garretCmd("config", "print", "--config", configFile(text)));
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("super-secret-value");
    const printed = parse(r.stdout) as Record<string, Record<string, unknown>>;
    expect(printed.storage).toMatchObject({
      type: "s3", bucket: "cache", endpoint: "http://minio:9000", "force-path-style": true,
      "access-key-id": "AKIAEXAMPLE", "secret-access-key": "<redacted>",
    });
    expect(printed.compression).toEqual({ type: "br", level: 5 });
    expect(printed.listen as unknown).toBe("127.0.0.1:9000");
  });

  test("environment overrides the file", () => {
    const r = run(garretCmd("config", "print", "--config", configFile(text)), {
      env: { GARRET_LISTEN: "127.0.0.1:9100", GARRET_S3_BUCKET: "other" },
    });
    const printed = parse(r.stdout) as Record<string, Record<string, unknown>>;
    expect(printed.listen as unknown).toBe("127.0.0.1:9100");
    expect(printed.storage!.bucket).toBe("other");
  });

  test("GARRET_CONFIG names the file; ./garret.toml is used when present", () => {
    const path = configFile('listen = "127.0.0.1:9200"\n');
    const viaEnv = parse(run(garretCmd("config", "print"), { env: { GARRET_CONFIG: path } }).stdout) as Record<string, unknown>;
    expect(viaEnv.listen).toBe("127.0.0.1:9200");
    const dir = tempDir("garret-cwd-");
    writeFileSync(join(dir, "garret.toml"), 'listen = "127.0.0.1:9300"\n');
    const viaCwd = parse(run(garretCmd("config", "print"), { cwd: dir }).stdout) as Record<string, unknown>;
    expect(viaCwd.listen).toBe("127.0.0.1:9300");
  });
});
