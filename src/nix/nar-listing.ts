import { NixFormatError } from "./errors.ts";

/** One node of a NAR listing, the JSON `nix store ls` and `.ls` files use (version 1). */
export type ListingNode =
  | { type: "regular"; size: number; executable?: true; narOffset: number }
  | { type: "symlink"; target: string }
  | { type: "directory"; entries: Record<string, ListingNode> };

/** Reads a NAR stream piece by piece: contents are skipped, only tokens are kept. */
class Reader {
  private buf = new Uint8Array(0);
  private pos = 0;
  offset = 0; // bytes consumed so far
  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async fill(n: number): Promise<void> {
    while (this.buf.length - this.pos < n) {
      const { done, value } = await this.it.next();
      if (done) throw new NixFormatError("NAR ends early");
      const rest = this.buf.subarray(this.pos);
      const next = new Uint8Array(rest.length + value.length);
      next.set(rest);
      next.set(value, rest.length);
      this.buf = next;
      this.pos = 0;
    }
  }

  async u64(): Promise<number> {
    await this.fill(8);
    const v = Number(Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, 8).readBigUInt64LE());
    this.pos += 8;
    this.offset += 8;
    return v;
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.pos >= this.buf.length) await this.fill(1);
      const take = Math.min(n, this.buf.length - this.pos);
      this.pos += take;
      this.offset += take;
      n -= take;
    }
  }

  async str(max = 4096): Promise<string> {
    const len = await this.u64();
    if (len > max) throw new NixFormatError("NAR string too long");
    const padded = len + ((8 - (len % 8)) % 8);
    await this.fill(padded);
    const s = new TextDecoder().decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += padded;
    this.offset += padded;
    return s;
  }

  async expect(word: string): Promise<void> {
    const s = await this.str();
    if (s !== word) throw new NixFormatError(`NAR: expected ${word}, got ${JSON.stringify(s)}`);
  }
}

async function node(r: Reader): Promise<ListingNode> {
  await r.expect("(");
  await r.expect("type");
  const type = await r.str();
  if (type === "symlink") {
    await r.expect("target");
    const target = await r.str();
    await r.expect(")");
    return { type, target };
  }
  if (type === "regular") {
    let tag = await r.str();
    let executable = false;
    if (tag === "executable") {
      await r.expect("");
      executable = true;
      tag = await r.str();
    }
    if (tag !== "contents") throw new NixFormatError("NAR: expected contents");
    const size = await r.u64();
    const narOffset = r.offset;
    await r.skip(size + ((8 - (size % 8)) % 8));
    await r.expect(")");
    return executable ? { type, size, executable: true, narOffset } : { type, size, narOffset };
  }
  if (type !== "directory") throw new NixFormatError(`NAR: unknown type ${type}`);
  const entries: Record<string, ListingNode> = {};
  for (;;) {
    const tag = await r.str();
    if (tag === ")") return { type, entries };
    if (tag !== "entry") throw new NixFormatError("NAR: expected entry");
    await r.expect("(");
    await r.expect("name");
    const name = await r.str();
    await r.expect("node");
    entries[name] = await node(r);
    await r.expect(")");
  }
}

/** The listing of a NAR read from a stream (file contents are skipped, never held). */
export async function narListing(nar: AsyncIterable<Uint8Array>): Promise<{ version: 1; root: ListingNode }> {
  const r = new Reader(nar[Symbol.asyncIterator]());
  await r.expect("nix-archive-1");
  return { version: 1, root: await node(r) };
}
