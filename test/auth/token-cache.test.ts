/**
 * The server remembers verified tokens so a push does not re-check the MAC on every upload. A
 * remembered answer must always equal a fresh check: a token that expires while remembered is
 * refused, and forged or tampered tokens are never accepted because a good one was seen.
 */
import { expect, test } from "bun:test";
import { InvalidToken, TokenAuthority } from "../../src/auth/token.ts";

const SECRET = Buffer.alloc(32, 7).toString("base64");
const OTHER = Buffer.alloc(32, 9).toString("base64");

test("a remembered token is refused once it expires", async () => {
  const auth = new TokenAuthority(SECRET);
  const token = await auth.mint("alice", 1, { "*": { r: 1 } });
  expect((await auth.verify(token)).sub).toBe("alice");
  expect((await auth.verify(token)).sub).toBe("alice"); // from memory
  await Bun.sleep(2100);
  await expect(auth.verify(token)).rejects.toThrow(InvalidToken);
  await expect(auth.verify(token)).rejects.toThrow("expired");
});

test("seeing a good token never makes a forged or tampered one pass", async () => {
  const auth = new TokenAuthority(SECRET);
  const good = await auth.mint("alice", 3600, { "*": { r: 1 } });
  await auth.verify(good);
  const forged = await new TokenAuthority(OTHER).mint("alice", 3600, { "*": { r: 1 } });
  await expect(auth.verify(forged)).rejects.toThrow(InvalidToken);
  const [h, p, s] = good.split(".");
  const flipped = `${h}.${p}.${s!.slice(0, -2)}${s!.endsWith("AA") ? "AB" : "AA"}`;
  await expect(auth.verify(flipped)).rejects.toThrow(InvalidToken);
  // Still refused on a second look (failures are not remembered as successes).
  await expect(auth.verify(forged)).rejects.toThrow(InvalidToken);
  expect((await auth.verify(good)).sub).toBe("alice");
});

test("a server with another secret does not share what this one verified", async () => {
  const a = new TokenAuthority(SECRET);
  const b = new TokenAuthority(OTHER);
  const token = await a.mint("alice", 3600, {});
  await a.verify(token);
  await expect(b.verify(token)).rejects.toThrow(InvalidToken);
});
