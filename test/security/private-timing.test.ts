/**
 * Threat (issue 12): telling a private cache from a missing name by timing. Both must answer alike
 * in status, body and headers, and cost the same: a private cache's record was memoised while a
 * missing name went to the database every time, 4-8 us slower. Many requests, interleaved, so
 * load on the machine hits both sides alike; the medians are compared.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createCache, mintToken, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
  await createCache(server.url, mintToken(server.dataDir, "--create-cache", "*"), "hidden-timing");
});

afterAll(async () => {
  await server?.stop();
});

const ROUNDS = 3000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timed(url: string): Promise<{ ms: number; status: number; body: string; headers: string }> {
  const t = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  const ms = performance.now() - t;
  // date and x-request-id differ per request, whatever the cache
  const headers = [...res.headers].filter(([k]) => k !== "date" && k !== "x-request-id").map(([k, v]) => `${k}: ${v}`).join("\n");
  return { ms, status: res.status, body, headers };
}

test("a private cache answers like a missing name: same status, body, headers and time", async () => {
  const hidden = `${server.url}/hidden-timing/nix-cache-info`;
  const missing = `${server.url}/absent-timing/nix-cache-info`;
  const a = await timed(hidden);
  const b = await timed(missing);
  expect({ status: a.status, body: a.body, headers: a.headers }).toEqual({ status: b.status, body: b.body, headers: b.headers });
  expect(a.status).toBe(404);

  for (let i = 0; i < 300; i++) await timed(i % 2 ? hidden : missing); // warm up both paths
  const times: Record<"hidden" | "missing", number[]> = { hidden: [], missing: [] };
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate which goes first, so neither always follows the other.
    const order: ("hidden" | "missing")[] = i % 2 ? ["hidden", "missing"] : ["missing", "hidden"];
    for (const which of order) times[which].push((await timed(which === "hidden" ? hidden : missing)).ms);
  }
  const [h, m] = [median(times.hidden), median(times.missing)];
  console.log(`median: private ${(h * 1000).toFixed(1)} us, missing ${(m * 1000).toFixed(1)} us`);
  // Today both are the same code path; a database lookup on one side only costs well over this.
  expect(Math.abs(h - m)).toBeLessThan(Math.max(0.003, 0.05 * Math.min(h, m)));
});
