/**
 * Local storage serves NARs as slices of pack files. The pack's size is checked at most every few
 * seconds per pack (it never changes once written), but a missing or short pack is still an error,
 * and a pack this process deleted is never served from the remembered size.
 */
import { expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { LocalStorage } from "../../src/store/local.ts";
import { MissingObjectError } from "../../src/store/storage.ts";
import { tempDir } from "../helpers/nix.ts";

async function storage(): Promise<{ s: LocalStorage; root: string }> {
  const root = tempDir("garret-slice-");
  const s = new LocalStorage(root);
  await s.init();
  return { s, root };
}

const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 255);

test("a slice holds exactly the bytes asked for, also when served again", async () => {
  const { s } = await storage();
  const data = bytes(10_000);
  await s.put("packs/a.pack", [data]);
  for (let round = 0; round < 2; round++) {
    const blob = (await s.fileSlice("packs/a.pack", { offset: 1234, length: 5000 }))!;
    expect(new Uint8Array(await blob.arrayBuffer())).toEqual(data.slice(1234, 6234));
  }
});

test("a missing pack, or a range past its end, is a MissingObjectError", async () => {
  const { s } = await storage();
  await s.put("packs/b.pack", [bytes(100)]);
  await expect(s.fileSlice("packs/none.pack", { offset: 0, length: 10 })).rejects.toBeInstanceOf(MissingObjectError);
  await s.fileSlice("packs/b.pack", { offset: 0, length: 100 }); // remembered: 100 bytes
  await expect(s.fileSlice("packs/b.pack", { offset: 50, length: 51 })).rejects.toBeInstanceOf(MissingObjectError);
});

test("a deleted pack is not served from the size remembered before", async () => {
  const { s } = await storage();
  await s.put("packs/c.pack", [bytes(100)]);
  await s.fileSlice("packs/c.pack", { offset: 0, length: 100 });
  await s.delete("packs/c.pack");
  await expect(s.fileSlice("packs/c.pack", { offset: 0, length: 100 })).rejects.toBeInstanceOf(MissingObjectError);
});

test("a pack removed behind the server's back is noticed once the remembered size is due again", async () => {
  const { s, root } = await storage();
  await s.put("packs/d.pack", [bytes(100)]);
  await s.fileSlice("packs/d.pack", { offset: 0, length: 100 });
  rmSync(join(root, "packs/d.pack"));
  // Within the window the slice is handed out (reading it then fails); afterwards the stat is
  // redone. The clock is moved past the window rather than waited for.
  const realNow = performance.now.bind(performance);
  performance.now = () => realNow() + 5100;
  try {
    await expect(s.fileSlice("packs/d.pack", { offset: 0, length: 100 })).rejects.toBeInstanceOf(MissingObjectError);
  } finally {
    performance.now = realNow;
  }
});
