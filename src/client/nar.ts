import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from "node:fs";
import { lstat, open, readdir, readlink } from "node:fs/promises";

/**
 * Serialises a store path to NAR straight from the file system, as `nix-store --dump` does, but
 * in this process: spawning Nix costs about 20 ms of CPU per path, which dominated pushes of many
 * small paths. Streams: memory stays bounded by one 256 KiB read whatever the file sizes.
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

/** The file-system calls the serialiser makes: asynchronous, or (for small paths) synchronous. */
interface NarFs {
  lstat(path: Buffer): Promise<Stats> | Stats;
  readlink(path: Buffer): Promise<Buffer> | Buffer;
  readdir(path: Buffer): Promise<Buffer[]> | Buffer[];
  open(path: Buffer): Promise<OpenFile> | OpenFile;
}
interface OpenFile {
  read(into: Buffer): Promise<number> | number;
  close(): Promise<void> | void;
}

const asyncFs: NarFs = {
  lstat: (p) => lstat(p),
  readlink: (p) => readlink(p, { encoding: "buffer" }),
  readdir: (p) => readdir(p, { encoding: "buffer" }),
  open: async (p) => {
    const fh = await open(p, "r");
    return { read: async (b) => (await fh.read(b, 0, b.length, null)).bytesRead, close: () => fh.close() };
  },
};

/**
 * Blocking calls: each asynchronous one is a round trip through the thread pool, which costs
 * more than reading a small file. Used only for small NARs, so the event loop stalls for
 * microseconds.
 */
const syncFs: NarFs = {
  lstat: (p) => lstatSync(p),
  readlink: (p) => readlinkSync(p, { encoding: "buffer" }),
  readdir: (p) => readdirSync(p, { encoding: "buffer" }),
  open: (p) => {
    const fd = openSync(p, "r");
    return { read: (b) => readSync(fd, b, 0, b.length, null), close: () => closeSync(fd) };
  },
};

async function* nodeOf(buf: Buf, path: Buffer, fs: NarFs): AsyncGenerator<Uint8Array> {
  const st = await fs.lstat(path);
  buf.str("(");
  buf.str("type");
  if (st.isSymbolicLink()) {
    buf.str("symlink");
    buf.str("target");
    buf.str(await fs.readlink(path));
  } else if (st.isFile()) {
    buf.str("regular");
    if (st.mode & 0o100) {
      buf.str("executable");
      buf.str("");
    }
    buf.str("contents");
    buf.u64(st.size);
    const file = await fs.open(path);
    try {
      let left = st.size;
      while (left > 0) {
        const chunk = Buffer.allocUnsafe(Math.min(READ, left));
        const bytesRead = await file.read(chunk);
        if (bytesRead === 0) throw new Error(`${path.toString()} shrank while being read`);
        buf.raw(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
        left -= bytesRead;
        yield* buf.drain();
      }
    } finally {
      await file.close();
    }
    buf.pad(st.size);
  } else if (st.isDirectory()) {
    buf.str("directory");
    const names = (await fs.readdir(path)).sort(Buffer.compare);
    for (const name of names) {
      buf.str("entry");
      buf.str("(");
      buf.str("name");
      buf.str(name);
      buf.str("node");
      yield* nodeOf(buf, Buffer.concat([path, Buffer.from("/"), name]), fs);
      buf.str(")");
      yield* buf.drain();
    }
  } else {
    throw new Error(`${path.toString()} is neither a file, a directory nor a symlink`);
  }
  buf.str(")");
  yield* buf.drain();
}

async function* narChunks(path: string, fs = asyncFs): AsyncGenerator<Uint8Array> {
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
 * The whole NAR of a small path in one buffer. A request with a fixed body costs client and
 * server far less than a streamed one (no chunked encoding, one read), which is most of the cost
 * of pushing many small paths. Callers keep `expectedSize` small: this holds the NAR in memory.
 */
export async function narBytes(path: string, expectedSize: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const part of narChunks(path, syncFs)) {
    size += part.length;
    if (size > expectedSize) break;
    parts.push(part);
  }
  if (size !== expectedSize) throw new Error(`the NAR of ${path} is not the ${expectedSize} bytes the Nix database records`);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}
