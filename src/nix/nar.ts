import { NixFormatError } from "./errors.ts";

/**
 * Streaming structural check of a NAR (SPEC §3), on the upload hot path: it sees every byte of
 * every upload. File contents are counted and skipped in O(1) per chunk; only the small tokens
 * (keywords, names, symlink targets) are copied, into one fixed buffer allocated up front. Chunks
 * are never retained past push(), so callers may reuse their buffers.
 *
 * The grammar is enforced in the exact canonical form `nix-store --dump` writes (Nix's own
 * reader is looser about tag order, but NarHash is over these exact bytes, and a canonical NAR is
 * the only kind Nix produces).
 */

/** Longest symlink target or entry name accepted (PATH_MAX on Linux). */
export const MAX_NAR_STRING = 4096;
/**
 * Longest path inside the archive ("a/b/c"). Nix dumps and restores through full paths, which the
 * kernel caps at PATH_MAX, so no real NAR gets near this; the cap bounds the memory used to
 * remember the names of enclosing entries for the sort-order check.
 */
export const MAX_NAR_PATH = 4096;
// Keywords are at most "nix-archive-1" long; anything longer is rejected before being copied.
const MAX_KEYWORD = 16;

const enc = new TextEncoder();
const KW = {
  magic: enc.encode("nix-archive-1"),
  open: enc.encode("("),
  close: enc.encode(")"),
  type: enc.encode("type"),
  regular: enc.encode("regular"),
  symlink: enc.encode("symlink"),
  directory: enc.encode("directory"),
  executable: enc.encode("executable"),
  contents: enc.encode("contents"),
  target: enc.encode("target"),
  entry: enc.encode("entry"),
  name: enc.encode("name"),
  node: enc.encode("node"),
};

// Grammar states: what the next token must be.
const enum G {
  Magic,
  NodeOpen,
  TypeKeyword,
  TypeValue,
  RegularTag, // "executable" or "contents"
  ExecutableValue, // the "" after "executable"
  ContentsKeyword, // "contents" after the executable marker
  Contents, // file bytes: skipped
  NodeClose,
  TargetKeyword,
  Target,
  DirectoryItem, // "entry" or ")"
  EntryOpen,
  NameKeyword,
  Name,
  NodeKeyword,
  EntryClose,
  Done,
}

const EXPECTED: Record<G, string> = {
  [G.Magic]: '"nix-archive-1"',
  [G.NodeOpen]: '"("',
  [G.TypeKeyword]: '"type"',
  [G.TypeValue]: '"regular", "symlink" or "directory"',
  [G.RegularTag]: '"executable" or "contents"',
  [G.ExecutableValue]: 'the empty string after "executable"',
  [G.ContentsKeyword]: '"contents"',
  [G.Contents]: "file contents",
  [G.NodeClose]: '")"',
  [G.TargetKeyword]: '"target"',
  [G.Target]: "a symlink target",
  [G.DirectoryItem]: '"entry" or ")"',
  [G.EntryOpen]: '"("',
  [G.NameKeyword]: '"name"',
  [G.Name]: "an entry name",
  [G.NodeKeyword]: '"node"',
  [G.EntryClose]: '")"',
  [G.Done]: "end of archive",
};

// Token-level states: where inside the current token's bytes we are.
const enum T {
  Length, // reading the 8-byte little-endian length
  Data, // copying a small token into tok
  Skip, // skipping file contents
  Padding, // checking zero padding up to a multiple of 8
}

export class NarValidator {
  private g: G = G.Magic;
  private t: T = T.Length;
  /** Absolute offset of the current chunk's first byte during push(), of the next byte after. */
  private offset = 0;
  /** Offset where the current token's length field began, for error messages. */
  private tokenStart = 0;
  private lenBytesRead = 0;
  private lenLo = 0;
  private lenHi = 0;
  /** Bytes of data left to copy or skip in the current token. */
  private remaining = 0;
  private padLeft = 0;
  private readonly tok = new Uint8Array(MAX_NAR_STRING);
  private tokLen = 0;
  /**
   * Names of the entries enclosing the current node, "a/b/c" style without separators stored:
   * for the directory at depth d, its latest entry name is path[nameStart[d] .. +nameLen[d]].
   * That latest name is both the previous sibling (for the ascending-order check) and the
   * ancestor of whatever is being read below it, so the whole stack is one path-sized buffer.
   */
  private readonly path = new Uint8Array(MAX_NAR_PATH);
  private readonly nameStart: number[] = [];
  private readonly nameLen: number[] = [];
  /** Number of directory entries enclosing the current node (0 = root node). */
  private depth = 0;
  private failed: NixFormatError | null = null;

  /** Bytes consumed so far. */
  get bytesSeen(): number {
    return this.offset;
  }

  push(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    try {
      this.consume(chunk);
    } catch (e) {
      if (e instanceof NixFormatError) this.failed = e;
      throw e;
    }
  }

  finish(): void {
    if (this.failed) throw this.failed;
    if (this.g !== G.Done) {
      const inToken = this.t !== T.Length || this.lenBytesRead > 0;
      const where = inToken ? ` inside the token at ${this.tokenStart}` : "";
      this.fail(`truncated NAR: ended at byte ${this.offset}${where}, expecting ${EXPECTED[this.g]}`);
    }
  }

  private fail(message: string): never {
    this.failed = new NixFormatError(message);
    throw this.failed;
  }

  private consume(c: Uint8Array): void {
    const n = c.length;
    let p = 0;
    while (p < n) {
      switch (this.t) {
        case T.Length: {
          if (this.g === G.Done) {
            this.fail(`trailing data after the end of the NAR at byte ${this.offset + p}`);
          }
          if (this.lenBytesRead === 0) {
            this.tokenStart = this.offset + p;
            if (p + 8 <= n) {
              // Fast path, the common case: the whole length field is in this chunk.
              this.lenLo = (c[p]! | (c[p + 1]! << 8) | (c[p + 2]! << 16) | (c[p + 3]! << 24)) >>> 0;
              this.lenHi = (c[p + 4]! | (c[p + 5]! << 8) | (c[p + 6]! << 16) | (c[p + 7]! << 24)) >>> 0;
              p += 8;
              this.startToken();
              break;
            }
          }
          // Split across chunks: byte by byte.
          while (p < n && this.lenBytesRead < 8) {
            const b = c[p++]!;
            if (this.lenBytesRead < 4) this.lenLo += b * 2 ** (8 * this.lenBytesRead);
            else this.lenHi += b * 2 ** (8 * (this.lenBytesRead - 4));
            this.lenBytesRead++;
          }
          if (this.lenBytesRead === 8) this.startToken();
          break;
        }
        case T.Skip: {
          const k = Math.min(this.remaining, n - p);
          p += k;
          this.remaining -= k;
          if (this.remaining === 0) this.t = T.Padding;
          break;
        }
        case T.Data: {
          const k = Math.min(this.remaining, n - p);
          const tok = this.tok;
          let tl = this.tokLen;
          for (let i = 0; i < k; i++) tok[tl++] = c[p + i]!;
          this.tokLen = tl;
          p += k;
          this.remaining -= k;
          if (this.remaining === 0) this.t = T.Padding;
          break;
        }
        case T.Padding: {
          while (p < n && this.padLeft > 0) {
            if (c[p] !== 0) this.fail(`non-zero padding byte at ${this.offset + p} (token at ${this.tokenStart})`);
            p++;
            this.padLeft--;
          }
          break;
        }
      }
      // A token is complete once its padding is done; zero-length tokens arrive here directly.
      // endToken's messages cite tokenStart, so this.offset may stay at the chunk start meanwhile.
      if (this.t === T.Padding && this.padLeft === 0) {
        this.t = T.Length;
        this.endToken();
      }
    }
    this.offset += n;
  }

  /** The 8-byte length is in; decide how to read the token body. */
  private startToken(): void {
    const lo = this.lenLo;
    const hi = this.lenHi;
    this.lenBytesRead = 0;
    this.lenLo = 0;
    this.lenHi = 0;
    // Beyond 2^53 bytes the count would lose precision; no real file is 8 PiB.
    if (hi >= 0x200000) this.fail(`token length too large at byte ${this.tokenStart}`);
    const len = hi * 0x100000000 + lo;
    this.remaining = len;
    this.padLeft = (8 - (len % 8)) % 8;
    this.tokLen = 0;
    if (this.g === G.Contents) {
      this.t = len === 0 ? T.Padding : T.Skip;
      return;
    }
    const max = this.g === G.Name || this.g === G.Target ? MAX_NAR_STRING : MAX_KEYWORD;
    if (len > max) {
      this.fail(`token of ${len} bytes at byte ${this.tokenStart} is too long for ${EXPECTED[this.g]} (max ${max})`);
    }
    this.t = len === 0 ? T.Padding : T.Data;
  }

  private is(kw: Uint8Array): boolean {
    if (this.tokLen !== kw.length) return false;
    const tok = this.tok;
    for (let i = 0; i < kw.length; i++) if (tok[i] !== kw[i]) return false;
    return true;
  }

  private unexpected(): never {
    const shown = new TextDecoder().decode(this.tok.subarray(0, Math.min(this.tokLen, 64)));
    this.fail(`expected ${EXPECTED[this.g]} at byte ${this.tokenStart}, got ${JSON.stringify(shown)}`);
  }

  private expect(kw: Uint8Array, next: G): void {
    if (!this.is(kw)) this.unexpected();
    this.g = next;
  }

  /** A whole token (and its padding) has been read; advance the grammar. */
  private endToken(): void {
    switch (this.g) {
      case G.Magic:
        if (!this.is(KW.magic)) this.fail(`not a NAR: bad magic at byte 0`);
        this.g = G.NodeOpen;
        return;
      case G.NodeOpen:
        return this.expect(KW.open, G.TypeKeyword);
      case G.TypeKeyword:
        return this.expect(KW.type, G.TypeValue);
      case G.TypeValue:
        if (this.is(KW.regular)) this.g = G.RegularTag;
        else if (this.is(KW.symlink)) this.g = G.TargetKeyword;
        else if (this.is(KW.directory)) this.openDirectory();
        else this.unexpected();
        return;
      case G.RegularTag:
        if (this.is(KW.executable)) this.g = G.ExecutableValue;
        else if (this.is(KW.contents)) this.g = G.Contents;
        else this.unexpected();
        return;
      case G.ExecutableValue:
        if (this.tokLen !== 0) this.unexpected();
        this.g = G.ContentsKeyword;
        return;
      case G.ContentsKeyword:
        return this.expect(KW.contents, G.Contents);
      case G.Contents:
        this.g = G.NodeClose;
        return;
      case G.TargetKeyword:
        return this.expect(KW.target, G.Target);
      case G.Target:
        this.checkTarget();
        this.g = G.NodeClose;
        return;
      case G.NodeClose:
        if (!this.is(KW.close)) this.unexpected();
        return this.closeNode();
      case G.DirectoryItem:
        if (this.is(KW.entry)) this.g = G.EntryOpen;
        else if (this.is(KW.close)) this.closeNode();
        else this.unexpected();
        return;
      case G.EntryOpen:
        return this.expect(KW.open, G.NameKeyword);
      case G.NameKeyword:
        return this.expect(KW.name, G.Name);
      case G.Name:
        this.acceptName();
        this.g = G.NodeKeyword;
        return;
      case G.NodeKeyword:
        this.expect(KW.node, G.NodeOpen);
        this.depth++;
        return;
      case G.EntryClose:
        return this.expect(KW.close, G.DirectoryItem);
      case G.Done:
        // Unreachable: consume() rejects bytes after the end before a token starts.
        this.fail(`trailing data after the end of the NAR at byte ${this.tokenStart}`);
    }
  }

  private openDirectory(): void {
    const d = this.depth;
    // Entries of the directory at depth d are stored right after its own name and a separator.
    this.nameStart[d] = d === 0 ? 0 : this.nameStart[d - 1]! + this.nameLen[d - 1]! + 1;
    this.nameLen[d] = -1;
    this.g = G.DirectoryItem;
  }

  private closeNode(): void {
    if (this.depth === 0) {
      this.g = G.Done;
      return;
    }
    this.depth--;
    this.g = G.EntryClose;
  }

  private checkTarget(): void {
    const tok = this.tok;
    // A NUL can never reach symlink(2), so such a NAR could not be restored anywhere.
    for (let i = 0; i < this.tokLen; i++) if (tok[i] === 0) this.fail(`symlink target at byte ${this.tokenStart} contains NUL`);
  }

  private acceptName(): void {
    const tok = this.tok;
    const len = this.tokLen;
    const at = this.tokenStart;
    if (len === 0) this.fail(`empty entry name at byte ${at}`);
    if (tok[0] === 0x2e && (len === 1 || (len === 2 && tok[1] === 0x2e))) this.fail(`entry name "." or ".." at byte ${at}`);
    for (let i = 0; i < len; i++) {
      const b = tok[i];
      if (b === 0x2f || b === 0) this.fail(`entry name at byte ${at} contains ${b === 0 ? "NUL" : "'/'"}`);
    }
    const d = this.depth;
    const start = this.nameStart[d]!;
    if (start + len > MAX_NAR_PATH) this.fail(`path inside the NAR exceeds ${MAX_NAR_PATH} bytes at byte ${at}`);
    const prevLen = this.nameLen[d]!;
    const path = this.path;
    if (prevLen >= 0) {
      // Strictly ascending by unsigned bytes, as Nix's std::string comparison.
      let cmp = 0;
      const m = Math.min(prevLen, len);
      for (let i = 0; i < m && cmp === 0; i++) cmp = tok[i]! - path[start + i]!;
      if (cmp === 0) cmp = len - prevLen;
      if (cmp <= 0) {
        this.fail(`directory entries not strictly ascending at byte ${at}: ${JSON.stringify(new TextDecoder().decode(tok.subarray(0, len)))} after ${JSON.stringify(new TextDecoder().decode(path.subarray(start, start + prevLen)))}`);
      }
    }
    for (let i = 0; i < len; i++) path[start + i] = tok[i]!;
    this.nameLen[d] = len;
  }
}
