import { expect } from "bun:test";

/** The page and every asset it names, with their sizes. */
export async function pageWeight(url: string): Promise<{ total: number; assets: string[] }> {
  const page = await fetch(`${url}/`, { headers: { accept: "text/html" } });
  const html = await page.text();
  const refs = [...html.matchAll(/(?:src|href)="([^"#]+)"/g)].map((m) => m[1]!).filter((r) => r !== "/");
  let total = Buffer.byteLength(html);
  for (const ref of refs) {
    const res = await fetch(new URL(ref, url));
    expect(res.status).toBe(200);
    total += (await res.arrayBuffer()).byteLength;
  }
  return { total, assets: refs };
}
