import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NixFormatError } from "../../src/nix/errors.ts";
import { parseNarInfo, renderNarInfo } from "../../src/nix/narinfo.ts";
import {
  fingerprint, formatPublicKey, formatSecretKey, generateSecretKey, parsePublicKey, parseSecretKey,
  signFingerprint, verifySignature, type SecretKey,
} from "../../src/nix/signing.ts";
import { buildPathsWithReference, removeDir, requireNix, run, runRaw, tempDir } from "./nix-tool.ts";

const dir = tempDir("signing");
afterAll(() => removeDir(dir));

interface PathInfoJson { path: string; narHash: string; narSize: number; references: string[]; signatures?: string[] }
const pathInfo = (p: string, store?: string): PathInfoJson =>
  JSON.parse(run(["nix", "path-info", "--json", "--sigs", ...(store ? ["--store", store] : []), p]))[0];
const fpOf = (i: PathInfoJson): string => fingerprint(i.path, i.narHash, i.narSize, i.references);

let skText: string;
let pkText: string;
let paths: { top: string; dep: string };

function generateNixKey(name: string): { sk: string; pk: string } {
  const sk = join(dir, `${name}.sk`);
  const pk = join(dir, `${name}.pk`);
  run(["nix-store", "--generate-binary-cache-key", name, sk, pk]);
  return { sk: readFileSync(sk, "utf8"), pk: readFileSync(pk, "utf8") };
}

beforeAll(() => {
  requireNix();
  ({ sk: skText, pk: pkText } = generateNixKey("garret-test-1"));
  paths = buildPathsWithReference(dir);
});

test("nix is installed (required, never skipped)", () => {
  requireNix();
});

describe("keys", () => {
  test("nix-store --generate-binary-cache-key output loads and round trips", () => {
    const sk = parseSecretKey(skText);
    const pk = parsePublicKey(pkText);
    expect(sk.name).toBe("garret-test-1");
    expect(pk.name).toBe("garret-test-1");
    expect(sk.publicKey).toEqual(pk.key);
    expect(formatSecretKey(sk)).toBe(skText.trim());
    expect(formatPublicKey(sk)).toBe(pkText.trim());
    expect(formatPublicKey(pk)).toBe(pkText.trim());
    expect(parseSecretKey(`  ${skText}\n`)).toEqual(sk);
  });

  test("a secret key whose public half does not match its seed is rejected", () => {
    const other = parseSecretKey(generateNixKey("garret-test-2").sk);
    const mixed: SecretKey = { ...parseSecretKey(skText), publicKey: other.publicKey };
    expect(() => parseSecretKey(formatSecretKey(mixed))).toThrow(/does not match/);
  });

  test("malformed keys are rejected", () => {
    const [name, b64] = [skText.slice(0, skText.indexOf(":")), skText.slice(skText.indexOf(":") + 1).trim()];
    for (const t of ["", "nocolon", `:${b64}`, `${name}:`, `${name}:${b64.slice(4)}`, `${name}:${b64}x`, `${name}:!${b64.slice(1)}`, `a b:${b64}`]) {
      expect(() => parseSecretKey(t)).toThrow(NixFormatError);
    }
    expect(() => parsePublicKey(skText)).toThrow(/64 bytes, expected 32/);
    expect(() => parseSecretKey(pkText)).toThrow(/32 bytes, expected 64/);
    expect(() => parsePublicKey("k:AAAA")).toThrow(NixFormatError);
  });

  test("generateSecretKey makes a usable key; bad names refused", async () => {
    const k = await generateSecretKey("garret.example-1");
    expect(parseSecretKey(formatSecretKey(k))).toEqual(k);
    const sig = await signFingerprint(k, "hello");
    expect(await verifySignature([parsePublicKey(formatPublicKey(k))], "hello", sig)).toBe(true);
    for (const bad of ["", "a:b", "a b"]) await expect(generateSecretKey(bad)).rejects.toThrow(NixFormatError);
  });
});

describe("fingerprint", () => {
  test("format, hash normalisation, sorted references", () => {
    const i = pathInfo(paths.top);
    const b32 = run(["nix", "hash", "to-base32", i.narHash]);
    const expected = `1;${paths.top};sha256:${b32};${i.narSize};${paths.dep}`;
    expect(fpOf(i)).toBe(expected);
    expect(fingerprint(i.path, `sha256:${b32}`, i.narSize, i.references)).toBe(expected);
    const hex = run(["nix", "hash", "to-base16", i.narHash]);
    expect(fingerprint(i.path, `sha256:${hex}`, i.narSize, i.references)).toBe(expected);
    expect(fingerprint(paths.dep, i.narHash, 1, [paths.top, paths.dep, paths.top]))
      .toBe(`1;${paths.dep};sha256:${b32};1;${[paths.dep, paths.top].sort().join(",")}`);
  });

  test("rejects malformed input", () => {
    const i = pathInfo(paths.top);
    expect(() => fingerprint("/nix/store/x", i.narHash, 1, [])).toThrow(NixFormatError);
    expect(() => fingerprint(i.path, "sha1:abc", 1, [])).toThrow(NixFormatError);
    expect(() => fingerprint(i.path, i.narHash, -1, [])).toThrow(NixFormatError);
    expect(() => fingerprint(i.path, i.narHash, 1.5, [])).toThrow(NixFormatError);
    expect(() => fingerprint(i.path, i.narHash, 1, [paths.dep.slice(11)])).toThrow(NixFormatError);
  });
});

describe("against real nix", () => {
  test("a signature by nix store sign verifies with ours, and ours is identical (ed25519 is deterministic)", async () => {
    run(["nix", "store", "sign", "--key-file", join(dir, "garret-test-1.sk"), paths.top]);
    const i = pathInfo(paths.top);
    const nixSig = i.signatures!.find((s) => s.startsWith("garret-test-1:"))!;
    expect(nixSig).toBeDefined();
    const pk = parsePublicKey(pkText);
    const fp = fpOf(i);
    expect(await verifySignature([pk], fp, nixSig)).toBe(true);
    expect(await signFingerprint(parseSecretKey(skText), fp)).toBe(nixSig);
  });

  test("tampering fails: fingerprint, signature, key name, key", async () => {
    const i = pathInfo(paths.top);
    const sig = i.signatures!.find((s) => s.startsWith("garret-test-1:"))!;
    const pk = parsePublicKey(pkText);
    const fp = fpOf(i);
    expect(await verifySignature([pk], fingerprint(i.path, i.narHash, i.narSize + 1, i.references), sig)).toBe(false);
    expect(await verifySignature([pk], fingerprint(i.path, i.narHash, i.narSize, []), sig)).toBe(false);
    expect(await verifySignature([pk], `2${fp.slice(1)}`, sig)).toBe(false);
    const raw = Buffer.from(sig.slice(sig.indexOf(":") + 1), "base64");
    raw[5]! ^= 1;
    expect(await verifySignature([pk], fp, `garret-test-1:${raw.toString("base64")}`)).toBe(false);
    expect(await verifySignature([{ ...pk, name: "other" }], fp, sig)).toBe(false);
    const other = parsePublicKey(generateNixKey("garret-test-1-again").pk);
    expect(await verifySignature([{ ...other, name: "garret-test-1" }], fp, sig)).toBe(false);
    // One of several keys with that name is enough.
    expect(await verifySignature([{ ...other, name: "garret-test-1" }, pk], fp, sig)).toBe(true);
    for (const junk of ["", "garret-test-1", "garret-test-1:", "garret-test-1:AAAA", ":" + sig.slice(14), "garret-test-1:%%%"]) {
      expect(await verifySignature([pk], fp, junk)).toBe(false);
    }
    expect(await verifySignature([], fp, sig)).toBe(false);
  });

  test("nix store verify accepts our signatures in a file:// cache, and rejects a wrong one", async () => {
    const cache = join(dir, "cache");
    const store = `file://${cache}`;
    run(["nix", "copy", "--to", `${store}?compression=zstd`, paths.top]);
    const sk = parseSecretKey(skText);
    const trusted = ["--trusted-public-keys", pkText.trim()];

    // Unsigned: nix reports the paths as untrusted.
    const before = runRaw(["nix", "store", "verify", "--store", store, ...trusted, "-r", paths.top]);
    expect(before.code).not.toBe(0);
    expect(before.stderr).toContain("untrusted");

    const files = readdirSync(cache).filter((f) => f.endsWith(".narinfo"));
    expect(files.length).toBe(2);
    const resign = async (mutate: (fp: string) => string): Promise<void> => {
      for (const f of files) {
        const info = parseNarInfo(readFileSync(join(cache, f), "utf8"));
        const fp = fingerprint(info.storePath, info.narHash, info.narSize, info.references.map((r) => `/nix/store/${r}`));
        info.sigs = [await signFingerprint(sk, mutate(fp))];
        writeFileSync(join(cache, f), renderNarInfo(info));
      }
    };

    await resign((fp) => fp);
    const ok = runRaw(["nix", "store", "verify", "--store", store, ...trusted, "-r", paths.top]);
    expect(ok.stderr).not.toContain("untrusted");
    expect(ok.code).toBe(0);
    const shown = pathInfo(paths.top, store);
    expect(shown.signatures).toHaveLength(1);

    await resign((fp) => fp + "x");
    const bad = runRaw(["nix", "store", "verify", "--store", store, ...trusted, "-r", paths.top]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("untrusted");
  });
});
