import { NixFormatError } from "./errors.ts";
import { formatNixBase32, parseSha256 } from "./hash.ts";
import { parseStorePath, parseStorePathBasename } from "./store-path.ts";

export interface NarInfo {
  storePath: string;
  url: string;
  compression: string;
  /** "sha256:<base32>" of the compressed file. */
  fileHash?: string;
  fileSize?: number;
  /** "sha256:<base32>" of the uncompressed NAR. */
  narHash: string;
  narSize: number;
  /** Basenames, as narinfo writes them. */
  references: string[];
  /** Basename. */
  deriver?: string;
  system?: string;
  sigs: string[];
  ca?: string;
}

const INT = /^[0-9]+$/;
// Content addresses Nix 2.8 writes: "text:sha256:<hash>" and "fixed:[r:]<algo>:<hash>".
const CA = /^(?:text:sha256|fixed:(?:r:)?(?:md5|sha1|sha256|sha512)):[0-9A-Za-z+/=]+$/;
// "<key name>:<base64>"; the signature itself is only checked by whoever verifies it.
const SIG = /^[^:\s]+:[A-Za-z0-9+/=]+$/;
// A Nix system such as x86_64-linux or aarch64-darwin (what `builtins.currentSystem` gives).
const SYSTEM = /^[A-Za-z0-9_.+-]{1,64}$/;

/** Values a narinfo line may carry, for callers that take them from JSON. */
export const isContentAddress = (s: string): boolean => CA.test(s);
export const isSignatureText = (s: string): boolean => SIG.test(s);
export const isSystem = (s: string): boolean => SYSTEM.test(s);

const SINGLE_KEYS = new Set(["StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize", "References", "Deriver", "System", "CA"]);

function parseSize(key: string, value: string): number {
  const n = Number(value);
  if (!INT.test(value) || !Number.isSafeInteger(n)) throw new NixFormatError(`narinfo ${key} ${JSON.stringify(value)} is not a non-negative integer`);
  return n;
}

function normaliseHash(key: string, value: string): string {
  try {
    return formatNixBase32(parseSha256(value));
  } catch (e) {
    if (e instanceof NixFormatError) throw new NixFormatError(`narinfo ${key}: ${e.message}`);
    throw e;
  }
}

/**
 * Parses a .narinfo the way Nix 2.8's NarInfo constructor does, but stricter where Nix would
 * silently take the last of repeated keys: a repeated single-valued key is rejected, since the
 * server signs and stores what it parses. Hashes are normalised to "sha256:<base32>".
 *
 * The store dir is taken from StorePath (everything before its last '/') unless given.
 */
export function parseNarInfo(text: string, storeDir?: string): NarInfo {
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  const lines = text.split("\n");
  // A final newline is what Nix writes; tolerate its absence rather than reject hand-made files.
  if (lines[lines.length - 1] === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const sep = line.indexOf(": ");
    if (sep <= 0) throw new NixFormatError(`narinfo line ${i + 1} is not "Key: value"`);
    const key = line.slice(0, sep);
    const value = line.slice(sep + 2);
    if (key === "Sig") {
      if (!SIG.test(value)) throw new NixFormatError(`narinfo Sig ${JSON.stringify(value)} is not <key name>:<base64>`);
      sigs.push(value);
    } else if (SINGLE_KEYS.has(key)) {
      if (fields.has(key)) throw new NixFormatError(`narinfo has more than one ${key} line`);
      fields.set(key, value);
    }
    // Anything else is an extension some other writer added; readers must ignore it (SPEC §2).
  }

  const required = (key: string): string => {
    const v = fields.get(key);
    if (v === undefined || v === "") throw new NixFormatError(`narinfo lacks ${key}`);
    return v;
  };

  const storePathRaw = required("StorePath");
  const dir = storeDir ?? storePathRaw.slice(0, Math.max(storePathRaw.lastIndexOf("/"), 1));
  const sp = parseStorePath(storePathRaw, dir);

  const url = required("URL");
  if (/\s/.test(url)) throw new NixFormatError(`narinfo URL ${JSON.stringify(url)} contains whitespace`);
  const compression = fields.get("Compression") || "bzip2"; // Nix's default for a missing/empty value
  const narHash = normaliseHash("NarHash", required("NarHash"));
  const narSize = parseSize("NarSize", required("NarSize"));
  // No NAR is empty (even an empty file serialises to 112 bytes); Nix treats 0 as corrupt too.
  if (narSize === 0) throw new NixFormatError("narinfo NarSize is 0");

  const info: NarInfo = { storePath: sp.path, url, compression, narHash, narSize, references: [], sigs };

  const fileHash = fields.get("FileHash");
  if (fileHash !== undefined) info.fileHash = normaliseHash("FileHash", fileHash);
  const fileSize = fields.get("FileSize");
  if (fileSize !== undefined) info.fileSize = parseSize("FileSize", fileSize);

  const refs = fields.get("References");
  if (refs !== undefined) {
    for (const r of refs.split(" ")) {
      if (r !== "") info.references.push(parseStorePathBasename(r, sp.storeDir).basename);
    }
  }

  const deriver = fields.get("Deriver");
  // "unknown-deriver" is what old Nix versions wrote for "none".
  if (deriver !== undefined && deriver !== "" && deriver !== "unknown-deriver") {
    info.deriver = parseStorePathBasename(deriver, sp.storeDir).basename;
  }

  const system = fields.get("System");
  if (system !== undefined && system !== "") info.system = system;

  const ca = fields.get("CA");
  if (ca !== undefined && ca !== "") {
    if (!CA.test(ca)) throw new NixFormatError(`narinfo CA ${JSON.stringify(ca)} is not a content address`);
    info.ca = ca;
  }
  return info;
}

/**
 * Writes the lines in Nix's order (NarInfo::to_string). Like Nix, References is always present,
 * even when empty ("References: " with its trailing space); the other optional lines are left
 * out when unset. Values are written as given (parseNarInfo's output is already normalised).
 */
export function renderNarInfo(info: NarInfo): string {
  // Values can come from JSON (Attic's upload API); a newline in one would smuggle in extra lines.
  const values = [info.storePath, info.url, info.compression, info.fileHash, info.narHash, info.deriver, info.system, info.ca, ...info.references, ...info.sigs];
  for (const v of values) {
    if (v !== undefined && /[\r\n]/.test(v)) throw new NixFormatError(`narinfo value ${JSON.stringify(v)} contains a line break`);
  }
  let s = `StorePath: ${info.storePath}\nURL: ${info.url}\nCompression: ${info.compression}\n`;
  if (info.fileHash !== undefined) s += `FileHash: ${info.fileHash}\n`;
  if (info.fileSize !== undefined) s += `FileSize: ${info.fileSize}\n`;
  s += `NarHash: ${info.narHash}\nNarSize: ${info.narSize}\nReferences: ${info.references.join(" ")}\n`;
  if (info.deriver !== undefined) s += `Deriver: ${info.deriver}\n`;
  if (info.system !== undefined) s += `System: ${info.system}\n`;
  for (const sig of info.sigs) s += `Sig: ${sig}\n`;
  if (info.ca !== undefined) s += `CA: ${info.ca}\n`;
  return s;
}
