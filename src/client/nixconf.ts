import { homedir } from "node:os";
import { dirname, join } from "node:path";

/**
 * The nix.conf `garret use` edits: the first of NIX_USER_CONF_FILES when set (Nix then reads only
 * those), else $XDG_CONFIG_HOME/nix/nix.conf, else ~/.config/nix/nix.conf.
 */
export function userNixConfPath(env: NodeJS.ProcessEnv = process.env): string {
  const files = (env.NIX_USER_CONF_FILES ?? "").split(":").filter(Boolean);
  if (files.length > 0) return files[0]!;
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== "" ? env.XDG_CONFIG_HOME : join(homedir(), ".config");
  return join(base, "nix", "nix.conf");
}

/** The netrc file next to a nix.conf, used when nix.conf names none. */
export const defaultNetrcPath = (nixConf: string): string => join(dirname(nixConf), "netrc");

interface Setting {
  line: number;
  key: string;
  words: string[];
}

const SETTING = /^\s*([A-Za-z0-9][A-Za-z0-9-]*)\s*=\s*(.*)$/;

function settings(lines: string[]): Setting[] {
  const out: Setting[] = [];
  lines.forEach((raw, line) => {
    const m = SETTING.exec(raw.replace(/#.*$/, ""));
    if (m) out.push({ line, key: m[1]!, words: m[2]!.trim().split(/\s+/).filter(Boolean) });
  });
  return out;
}

const normUrl = (u: string): string => u.replace(/\/+$/, "");

export interface NixConfChange {
  text: string;
  /** Human-readable list of what was added ("extra-substituters = URL", ...). Empty: nothing to do. */
  added: string[];
  /** The netrc file nix.conf points at after the change (null when none is needed or set). */
  netrcFile: string | null;
}

/**
 * Adds a substituter and its key (and, for a private cache, a netrc-file) to nix.conf text. Values
 * already present under the plain or `extra-` setting are left alone; a value is appended to an
 * existing `extra-` line rather than adding a second one; every other line stays byte for byte.
 */
export function addCacheToNixConf(text: string, want: { substituter: string; publicKey: string; netrcFile?: string | null }): NixConfChange {
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  const added: string[] = [];
  const add = (key: string, aliases: string[], value: string, same: (a: string, b: string) => boolean): void => {
    const all = settings(lines);
    if (all.some((s) => aliases.includes(s.key) && s.words.some((w) => same(w, value)))) return;
    const existing = all.filter((s) => s.key === key).pop();
    if (existing) {
      const raw = lines[existing.line]!;
      const hash = raw.indexOf("#");
      lines[existing.line] = hash >= 0
        ? `${raw.slice(0, hash).trimEnd()} ${value} ${raw.slice(hash)}`
        : `${raw.trimEnd()} ${value}`;
    } else {
      lines.push(`${key} = ${value}`);
    }
    added.push(`${key} = ${value}`);
  };
  add("extra-substituters", ["substituters", "extra-substituters", "trusted-substituters", "extra-trusted-substituters"],
    want.substituter, (a, b) => normUrl(a) === normUrl(b));
  add("extra-trusted-public-keys", ["trusted-public-keys", "extra-trusted-public-keys"], want.publicKey, (a, b) => a === b);
  let netrcFile: string | null = null;
  if (want.netrcFile !== undefined && want.netrcFile !== null) {
    const current = settings(lines).filter((s) => s.key === "netrc-file").pop();
    if (current && current.words[0]) {
      netrcFile = current.words[0];
    } else {
      lines.push(`netrc-file = ${want.netrcFile}`);
      added.push(`netrc-file = ${want.netrcFile}`);
      netrcFile = want.netrcFile;
    }
  }
  return { text: lines.length === 0 ? "" : `${lines.join("\n")}\n`, added, netrcFile };
}

/** The netrc-file nix.conf names, if any. */
export function netrcFileOf(text: string): string | null {
  return settings(text.split("\n")).filter((s) => s.key === "netrc-file").pop()?.words[0] ?? null;
}

interface Token {
  value: string;
  start: number;
  end: number;
}

function tokens(text: string): Token[] {
  const out: Token[] = [];
  const re = /\S+/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push({ value: m[0], start: m.index, end: m.index + m[0].length });
  return out;
}

/**
 * Sets the password of `machine host` in netrc text: replaced in place when the entry exists,
 * appended otherwise. Other machines, logins and layout are kept. Nix sends it as Basic auth.
 */
/** The password a netrc gives `host`, if any. */
export function netrcPasswordOf(text: string, host: string): string | null {
  const toks = tokens(text);
  for (let i = 0; i < toks.length - 1; i++) {
    if (toks[i]!.value !== "machine" || toks[i + 1]!.value !== host) continue;
    for (let j = i + 2; j < toks.length - 1 && toks[j]!.value !== "machine" && toks[j]!.value !== "default"; j++) {
      if (toks[j]!.value === "password") return toks[j + 1]!.value;
    }
    return null;
  }
  return null;
}

export function setNetrcPassword(text: string, host: string, password: string): { text: string; changed: boolean } {
  const toks = tokens(text);
  for (let i = 0; i < toks.length - 1; i++) {
    if (toks[i]!.value !== "machine" || toks[i + 1]!.value !== host) continue;
    let j = i + 2;
    for (; j < toks.length && toks[j]!.value !== "machine" && toks[j]!.value !== "default"; j++) {
      if (toks[j]!.value === "password" && j + 1 < toks.length) {
        const t = toks[j + 1]!;
        if (t.value === password) return { text, changed: false };
        return { text: text.slice(0, t.start) + password + text.slice(t.end), changed: true };
      }
    }
    const after = toks[i + 1]!.end;
    return { text: `${text.slice(0, after)} password ${password}${text.slice(after)}`, changed: true };
  }
  const sep = text === "" || text.endsWith("\n") ? "" : "\n";
  return { text: `${text}${sep}machine ${host} password ${password}\n`, changed: true };
}
