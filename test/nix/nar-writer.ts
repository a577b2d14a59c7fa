/**
 * A tiny NAR writer for building malformed archives in tests. It writes whatever it is given,
 * in the given order, so tests can produce unsorted entries, bad names and bad padding; with
 * sorted input it produces exactly what `nix-store --dump` does (checked in nar.test.ts).
 */
export type NarNode =
  | { type: "regular"; executable?: boolean; contents: Uint8Array | string }
  | { type: "symlink"; target: Uint8Array | string }
  | { type: "directory"; entries: [Uint8Array | string, NarNode][] };

const enc = new TextEncoder();
const bytes = (s: Uint8Array | string): Uint8Array => (typeof s === "string" ? enc.encode(s) : s);

export class NarWriter {
  private parts: Uint8Array[] = [];

  /** One token; `pad` overrides the padding bytes (to make them non-zero). */
  str(s: Uint8Array | string, pad?: Uint8Array): this {
    const b = bytes(s);
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(b.length), true);
    this.parts.push(len, b, pad ?? new Uint8Array((8 - (b.length % 8)) % 8));
    return this;
  }

  raw(b: Uint8Array): this {
    this.parts.push(b);
    return this;
  }

  node(n: NarNode): this {
    this.str("(").str("type");
    if (n.type === "regular") {
      this.str("regular");
      if (n.executable) this.str("executable").str("");
      this.str("contents").str(n.contents);
    } else if (n.type === "symlink") {
      this.str("symlink").str("target").str(n.target);
    } else {
      this.str("directory");
      for (const [name, child] of n.entries) this.str("entry").str("(").str("name").str(name).str("node").node(child).str(")");
    }
    return this.str(")");
  }

  bytes(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

export function nar(n: NarNode): Uint8Array {
  return new NarWriter().str("nix-archive-1").node(n).bytes();
}
