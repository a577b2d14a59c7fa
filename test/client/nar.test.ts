/**
 * The in-process NAR serialiser used by push produces exactly what `nix-store --dump` does, for
 * every kind of file system object and awkward names.
 */
import { describe, expect, test } from "bun:test";
import { narStream } from "../../src/client/nar.ts";
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
  });

  test("a single file and a single symlink as the store path itself", async () => {
    const tag = uniqueTag();
    for (const script of [`echo ${tag} > $out; /bin/chmod 555 $out`, `/bin/ln -s /nix/store/${tag}-nowhere $out`]) {
      const out = buildExpr(`derivation { name = "garret-nar1-${tag}"; system = builtins.currentSystem; builder = "/bin/sh";
        args = [ "-c" "${script}" ]; }`);
      expect((await nar(out)).equals(narOf(out))).toBe(true);
    }
  });

  test("a path that does not exist fails the stream", async () => {
    expect(nar("/nix/store/00000000000000000000000000000000-nope")).rejects.toThrow("ENOENT");
  });
});
