/**
 * The in-process NAR serialiser used by push produces exactly what `nix-store --dump` does, for
 * every kind of file system object and awkward names.
 */
import { describe, expect, test } from "bun:test";
import { narBytes, narStream } from "../../src/client/nar.ts";
import { buildExpr, narOf, requireNix, uniqueTag } from "../helpers/nix.ts";

requireNix();

const nar = async (p: string): Promise<Buffer> => Buffer.from(await new Response(narStream(p)).arrayBuffer());

describe("narStream", () => {
  test("matches nix-store --dump on a tree of files, executables, symlinks, empty things and odd names", async () => {
    const tag = uniqueTag();
    const out = buildExpr(`derivation { name = "garret-nar-${tag}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" ''
        set -e
        /bin/mkdir -p $out/a/b/c $out/empty-dir $out/Zeta $out/zeta
        echo ${tag} > $out/a/b/c/deep
        : > $out/empty-file
        printf 'x' > $out/one-byte
        printf '12345678' > $out/eight-bytes
        echo '#!/bin/sh' > $out/run.sh; /bin/chmod 755 $out/run.sh
        /bin/ln -s a/b/c/deep $out/link
        /bin/ln -s /nonexistent/target $out/dangling
        /bin/ln -s . $out/a/self
        for n in B a A _ - . .hidden 'sp ace' 'é' 'ü' '~tilde' '10' '9'; do echo "$n" > "$out/zeta/$n" 2>/dev/null || true; done
        printf 'latin1' > "$out/zeta/$(printf '\\351')"
        /usr/bin/head -c 5000000 /dev/urandom > $out/big
      '' ]; }`);
    const mine = await nar(out);
    const theirs = narOf(out);
    expect(mine.length).toBe(theirs.length);
    expect(mine.equals(theirs)).toBe(true);
    // The one-buffer writer for small paths, given the size the Nix database records.
    expect(Buffer.from(await narBytes(out, theirs.length)).equals(theirs)).toBe(true);
  });

  test("a single file and a single symlink as the store path itself", async () => {
    const tag = uniqueTag();
    for (const script of [`echo ${tag} > $out; /bin/chmod 555 $out`, `/bin/ln -s /nix/store/${tag}-nowhere $out`]) {
      const out = buildExpr(`derivation { name = "garret-nar1-${tag}"; system = builtins.currentSystem; builder = "/bin/sh";
        args = [ "-c" "${script}" ]; }`);
      expect((await nar(out)).equals(narOf(out))).toBe(true);
      expect(Buffer.from(await narBytes(out, narOf(out).length)).equals(narOf(out))).toBe(true);
    }
  });

  test("the one-buffer writer refuses a size other than the path's, larger or smaller", async () => {
    const tag = uniqueTag();
    const out = buildExpr(`derivation { name = "garret-nar2-${tag}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "/bin/mkdir $out; echo ${tag} > $out/f; /usr/bin/head -c 3000 /dev/zero > $out/g" ]; }`);
    const size = narOf(out).length;
    for (const wrong of [size - 8, size - 1, size + 8, 16]) {
      await expect(narBytes(out, wrong)).rejects.toThrow("the Nix database records");
    }
  });

  test("a path that does not exist fails the stream", async () => {
    await expect(nar("/nix/store/00000000000000000000000000000000-nope")).rejects.toThrow("ENOENT");
    await expect(narBytes("/nix/store/00000000000000000000000000000000-nope", 100)).rejects.toThrow("ENOENT");
  });
});
