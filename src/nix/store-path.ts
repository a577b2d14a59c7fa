import { base32Digit } from "./base32.ts";
import { NixFormatError } from "./errors.ts";

export const DEFAULT_STORE_DIR = "/nix/store";

/** Length of the nix-base32 digest at the start of a store path's basename (20 bytes). */
export const STORE_PATH_HASH_LEN = 32;
/** Nix's StorePath::MaxPathLen: the longest allowed name after "<hash>-". */
export const MAX_NAME_LEN = 211;

export interface StorePath {
  storeDir: string;
  /** The 32-character nix-base32 part; keys narinfo lookups. */
  hash: string;
  name: string;
  /** Full path, `${storeDir}/${basename}`. */
  path: string;
  basename: string;
}

export function isValidStorePathHash(s: string): boolean {
  if (s.length !== STORE_PATH_HASH_LEN) return false;
  for (let i = 0; i < STORE_PATH_HASH_LEN; i++) if (base32Digit(s.charCodeAt(i)) < 0) return false;
  return true;
}

// [A-Za-z0-9+\-._?=]; checked by char code so validation does not build a RegExp match per call.
function isNameChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === 0x2b || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x3f || c === 0x3d
  );
}

/**
 * A store dir a cache may declare: it is rendered into nix-cache-info and every narinfo, so one
 * line of conservative path characters, absolute, without empty, `.` or `..` segments.
 */
export function isValidStoreDir(dir: string): boolean {
  if (dir.length > 256 || !/^(\/[A-Za-z0-9+\-._=]+)+$/.test(dir)) return false;
  return dir.split("/").slice(1).every((segment) => segment !== "." && segment !== "..");
}

// "/nix/store/" and "/nix/store" both mean the same store; keep "/" itself intact.
function normaliseStoreDir(storeDir: string): string {
  if (!storeDir.startsWith("/")) throw new NixFormatError(`store dir ${JSON.stringify(storeDir)} is not absolute`);
  let d = storeDir;
  while (d.length > 1 && d.endsWith("/")) d = d.slice(0, -1);
  return d;
}

export function parseStorePathBasename(basename: string, storeDir: string = DEFAULT_STORE_DIR): StorePath {
  const dir = normaliseStoreDir(storeDir);
  const q = JSON.stringify(basename);
  if (basename.length < STORE_PATH_HASH_LEN + 2 || basename.charCodeAt(STORE_PATH_HASH_LEN) !== 0x2d) {
    throw new NixFormatError(`store path basename ${q} is not <32-char hash>-<name>`);
  }
  const hash = basename.slice(0, STORE_PATH_HASH_LEN);
  if (!isValidStorePathHash(hash)) throw new NixFormatError(`store path basename ${q} has an invalid hash part`);
  const name = basename.slice(STORE_PATH_HASH_LEN + 1);
  if (name.length > MAX_NAME_LEN) throw new NixFormatError(`store path name in ${q} is longer than ${MAX_NAME_LEN} characters`);
  if (name.charCodeAt(0) === 0x2e) throw new NixFormatError(`store path name in ${q} starts with '.'`);
  for (let i = 0; i < name.length; i++) {
    if (!isNameChar(name.charCodeAt(i))) {
      throw new NixFormatError(`store path name in ${q} contains invalid character ${JSON.stringify(name[i])}`);
    }
  }
  return { storeDir: dir, hash, name, path: dir === "/" ? `/${basename}` : `${dir}/${basename}`, basename };
}

export function parseStorePath(path: string, storeDir: string = DEFAULT_STORE_DIR): StorePath {
  const dir = normaliseStoreDir(storeDir);
  const prefix = dir === "/" ? "/" : `${dir}/`;
  if (!path.startsWith(prefix)) {
    throw new NixFormatError(`path ${JSON.stringify(path)} is not in the store directory ${dir}`);
  }
  const basename = path.slice(prefix.length);
  // A '/' here would be a path inside a store object, not a store path; the name check below
  // would reject it too, but this message says what is actually wrong.
  if (basename.includes("/")) throw new NixFormatError(`path ${JSON.stringify(path)} is inside a store path, not a store path`);
  return parseStorePathBasename(basename, dir);
}
