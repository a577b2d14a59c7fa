import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from "node:fs";
type FsPromises = typeof import("node:fs/promises");

/**
 * Serialises a store path to NAR straight from the file system, as `nix-store --dump` does, but
 * in this process: spawning Nix costs about 20 ms of CPU per path, which dominated pushes of many
 * small paths. Two writers: a stream for any size (memory bounded by one 256 KiB read whatever
 * the file sizes), and one buffer for small paths, whose size the Nix database records.
 *
 * Format (SPEC §3): every token is a u64 little-endian length, the bytes, zero padding to 8.
 * Directory entries are sorted by the bytes of their names; a regular file is executable when
 * its owner may execute it (what Nix checks).
 */
const FLUSH = 64 * 1024;
const READ = 256 * 1024;
const enc = new TextEncoder();
const ZERO = new Uint8Array(8);

/** Small tokens are gathered into one chunk of about 64 KiB before they are handed on. */
class Buf {
  private parts: Uint8Array[] = [];
  size = 0;

  raw(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }

  u64(n: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    this.raw(b);
  }

  pad(n: number): void {
    if (n % 8 !== 0) this.raw(ZERO.subarray(0, 8 - (n % 8)));
  }

  str(s: string | Uint8Array): void {
    const b = typeof s === "string" ? enc.encode(s) : s;
    this.u64(b.length);
    if (b.length > 0) this.raw(b);
    this.pad(b.length);
  }

  take(): Uint8Array {
    const one = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    return one;
  }

  *drain(): Generator<Uint8Array> {
    if (this.size >= FLUSH) yield this.take();
  }
}

/**
 * The grammar both writers follow: the tokens that open the node `st` describes, up to its
 * payload (a symlink's target, a file's size and contents, a directory's entries).
 */
function openingTokens(st: Stats, path: Buffer): readonly string[] {
  if (st.isSymbolicLink()) return ["(", "type", "symlink", "target"];
  if (st.isFile()) return st.mode & 0o100 ? ["(", "type", "regular", "executable", "", "contents"] : ["(", "type", "regular", "contents"];
  if (st.isDirectory()) return ["(", "type", "directory"];
  throw new Error(`${path.toString()} is neither a file, a directory nor a symlink`);
}

/** A directory entry is these tokens, its name, "node", the node, then ")". */
const ENTRY_OPENING = ["entry", "(", "name"] as const;

async function* nodeOf(buf: Buf, path: Buffer, fs: FsPromises): AsyncGenerator<Uint8Array> {
  const { lstat, open, readdir, readlink } = fs;
  const st = await lstat(path);
  for (const t of openingTokens(st, path)) buf.str(t);
  if (st.isSymbolicLink()) {
    buf.str(await readlink(path, { encoding: "buffer" }));
  } else if (st.isFile()) {
    buf.u64(st.size);
    const file = await open(path, "r");
    try {
      let left = st.size;
      while (left > 0) {
        const chunk = Buffer.allocUnsafe(Math.min(READ, left));
        const { bytesRead } = await file.read(chunk, 0, chunk.length, null);
        if (bytesRead === 0) throw new Error(`${path.toString()} shrank while being read`);
        buf.raw(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
        left -= bytesRead;
        yield* buf.drain();
      }
    } finally {
      await file.close();
    }
    buf.pad(st.size);
  } else {
    const names = (await readdir(path, { encoding: "buffer" })).sort(Buffer.compare);
    for (const name of names) {
      for (const t of ENTRY_OPENING) buf.str(t);
      buf.str(name);
      buf.str("node");
      yield* nodeOf(buf, Buffer.concat([path, SLASH, name]), fs);
      buf.str(")");
      yield* buf.drain();
    }
  }
  buf.str(")");
  yield* buf.drain();
}

async function* narChunks(path: string): AsyncGenerator<Uint8Array> {
  // Loaded here, not at start: a push of small paths never streams, and the module costs a
  // client command most of a millisecond to load.
  const fs = await import("node:fs/promises");
  const buf = new Buf();
  buf.str("nix-archive-1");
  yield* nodeOf(buf, Buffer.from(path), fs);
  if (buf.size > 0) yield buf.take();
}

/** The NAR of `path` as a pull-driven stream: nothing is read before the consumer asks. */
export function narStream(path: string): ReadableStream<Uint8Array> {
  const it = narChunks(path);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await it.return(undefined);
    },
  }, { highWaterMark: 0 });
}

/**
 * The whole NAR of a small path in one buffer of the size the Nix database records, written in
 * place with blocking calls: a request with a fixed body costs client and server far less than a
 * streamed one, and for a path of a few KiB each thread-pool round trip or async step costs more
 * than the read itself. Callers keep `expectedSize` small: this holds the NAR in memory.
 */
export async function narBytes(path: string, expectedSize: number): Promise<Uint8Array> {
  const w = new NarWriter(path, expectedSize);
  w.str(MAGIC);
  w.node(Buffer.from(path));
  return w.finish();
}

const MAGIC = enc.encode("nix-archive-1");
const TOKENS = Object.fromEntries(["(", ")", "type", "symlink", "target", "regular", "executable", "", "contents",
  "directory", "entry", "name", "node"].map((t) => [t, enc.encode(t)]));

/** Serialises into a fixed buffer; any disagreement with the recorded size is an error. */
class NarWriter {
  private readonly buf: Buffer;
  private off = 0;

  constructor(private readonly root: string, private readonly size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): void {
    if (this.off + n > this.size) throw this.mismatch();
  }

  private mismatch(): Error {
    return new Error(`the NAR of ${this.root} is not the ${this.size} bytes the Nix database records`);
  }

  private u64(n: number): void {
    this.room(8);
    this.buf.writeUInt32LE(n >>> 0, this.off);
    this.buf.writeUInt32LE(Math.floor(n / 2 ** 32), this.off + 4);
    this.off += 8;
  }

  private pad(n: number): void {
    const p = (8 - (n % 8)) % 8;
    this.room(p);
    this.buf.fill(0, this.off, this.off + p);
    this.off += p;
  }

  str(b: Uint8Array): void {
    this.u64(b.length);
    this.room(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
    this.pad(b.length);
  }

  private tok(t: string): void {
    this.str(TOKENS[t]!);
  }

  node(path: Buffer): void {
    const st = lstatSync(path);
    for (const t of openingTokens(st, path)) this.tok(t);
    if (st.isSymbolicLink()) {
      this.str(readlinkSync(path, { encoding: "buffer" }));
    } else if (st.isFile()) {
      this.u64(st.size);
      this.room(st.size);
      this.contents(path, st.size);
      this.pad(st.size);
    } else {
      for (const name of readdirSync(path, { encoding: "buffer" }).sort(Buffer.compare)) {
        for (const t of ENTRY_OPENING) this.tok(t);
        this.str(name);
        this.tok("node");
        this.node(Buffer.concat([path, SLASH, name]));
        this.tok(")");
      }
    }
    this.tok(")");
  }

  /** Reads the file straight into its place in the NAR. */
  private contents(path: Buffer, size: number): void {
    const fd = openSync(path, "r");
    try {
      let done = 0;
      while (done < size) {
        const n = readSync(fd, this.buf, this.off + done, size - done, null);
        if (n === 0) throw new Error(`${path.toString()} shrank while being read`);
        done += n;
      }
      this.off += size;
    } finally {
      closeSync(fd);
    }
  }

  finish(): Uint8Array {
    if (this.off !== this.size) throw this.mismatch();
    return this.buf;
  }
}

const SLASH = Buffer.from("/");
