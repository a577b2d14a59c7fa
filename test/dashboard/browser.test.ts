/**
 * Issue 14, acceptance 1: the dashboard in Debian's chromium, driven headless by playwright-core
 * (which downloads no browser). Sign-in, figures after real pushes, the cache page's nix.conf lines,
 * search, the path page's references, what anonymous and `a-*` visitors see, a substituter URL
 * opened in the browser, and where the token never goes (URLs, localStorage, the server's log).
 * Screenshots of every page, light and dark, go to test/artifacts/ (git-ignored).
 * Without /usr/bin/chromium this test fails; it never skips.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { buildClosure, requireNix, tempDir, uniqueTag } from "../helpers/nix.ts";
import { createCache, mintToken, REPO, startServer, type TestServer } from "../helpers/server.ts";
import { pathInfo, uploadPath } from "../helpers/api.ts";

requireNix();

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(REPO, "test/artifacts");
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let server: TestServer;
let browser: BrowserContext;
let admin: string;
let tokenA: string;
let top: string;
let dep: string;
let publicKey: string;
/** Every URL the browser asked for or navigated to. */
const urls: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is needed for the dashboard's browser tests (apt-get install chromium)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await startServer();
  admin = mintToken(server.dataDir, "--pull", "*", "--push", "*", "--delete", "*", "--create-cache", "*",
    "--configure-cache", "*", "--configure-cache-retention", "*", "--destroy-cache", "*");
  tokenA = mintToken(server.dataDir, "--pull", "a-*", "--push", "a-*");
  await createCache(server.url, admin, "a-pub", { is_public: true });
  publicKey = await createCache(server.url, admin, "a-priv");
  await createCache(server.url, admin, "b-priv");
  ({ top, dep } = buildClosure(`ui-${uniqueTag()}`));
  for (const p of [dep, top]) expect((await uploadPath(server.url, admin, "a-priv", p)).status).toBe(200);
  expect((await uploadPath(server.url, admin, "a-pub", dep)).status).toBe(200);
  expect((await uploadPath(server.url, admin, "b-priv", dep)).status).toBe(200);
  // A fresh profile every run; playwright takes --user-data-dir as this argument.
  browser = await chromium.launchPersistentContext(tempDir("garret-chromium-"), {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1200, height: 900 },
  });
  browser.on("request", (r) => urls.push(r.url()));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** As the page prints sizes. */
function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

async function heading(page: Page, text: string): Promise<void> {
  await page.locator("main h1", { hasText: text }).first().waitFor();
}

async function shots(page: Page, name: string): Promise<void> {
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${colorScheme}.png`), fullPage: true });
  }
  await page.emulateMedia({ colorScheme: "light" });
}

async function cacheNames(page: Page): Promise<string[]> {
  await heading(page, "Caches");
  await page.locator("main tbody tr").first().waitFor();
  return (await page.locator("main tbody tr td:first-child").allTextContents()).sort();
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.fill("#token", token);
  await page.press("#token", "Enter");
  await page.locator("#signedin").waitFor();
}

let page: Page;

test("anonymous visitors see only the public cache", async () => {
  page = await browser.newPage();
  page.on("framenavigated", (f) => urls.push(f.url()));
  await page.goto(`${server.url}/`);
  expect(await cacheNames(page)).toEqual(["a-pub"]);
  await shots(page, "caches-anonymous");
});

test("sign in: every cache, with its path count and sizes after pushes", async () => {
  await signIn(page, admin);
  await page.locator("main tbody tr", { hasText: "b-priv" }).waitFor();
  expect(await cacheNames(page)).toEqual(["a-priv", "a-pub", "b-priv"]);
  const priv = page.locator("main tbody tr", { hasText: "a-priv" });
  const cells = await priv.locator("td").allTextContents();
  expect(cells[1]).toBe("2");
  expect(cells[2]).toBe(bytes(pathInfo(top).narSize + pathInfo(dep).narSize));
  const pub = await page.locator("main tbody tr", { hasText: "a-pub" }).locator("td").allTextContents();
  expect(pub[1]).toBe("1");
  expect(pub[2]).toBe(bytes(pathInfo(dep).narSize));
  // Sortable: by paths, descending on a second press.
  await page.getByRole("button", { name: "Paths" }).click();
  await page.getByRole("button", { name: "Paths" }).click();
  expect(await page.locator("main tbody tr td:first-child").first().textContent()).toBe("a-priv");
  // Filterable.
  await page.fill("#filter", "b-");
  expect(await page.locator("main tbody tr td:first-child").allTextContents()).toEqual(["b-priv"]);
  await page.fill("#filter", "");
  await shots(page, "caches");
});

test("one cache: its nix.conf lines show its key; search finds a pushed path", async () => {
  await page.getByRole("link", { name: "a-priv" }).click();
  await heading(page, "a-priv");
  expect(await page.locator("#public-key").textContent()).toBe(publicKey);
  const conf = await page.locator("pre", { hasText: "extra-trusted-public-keys" }).textContent();
  expect(conf).toContain(`extra-trusted-public-keys = ${publicKey}`);
  expect(conf).toContain(`extra-substituters = ${server.url}/a-priv`);
  await page.locator("main tbody tr").nth(1).waitFor();
  await shots(page, "cache");
  const name = dep.split("/").pop()!.slice(33);
  await page.fill("#q", name);
  await page.press("#q", "Enter");
  await page.locator("main tbody tr", { hasText: name }).waitFor();
  // Polled from here: a string predicate is evaluated in the page, which its CSP (no unsafe-eval) forbids.
  while ((await page.locator("main tbody tr").count()) !== 1) await Bun.sleep(20);
  expect(await page.locator("main tbody tr a").allTextContents()).toEqual([dep.split("/").pop()!]);
  await page.setViewportSize({ width: 360, height: 800 });
  await shots(page, "cache-360px");
  await page.setViewportSize({ width: 1200, height: 900 });
});

test("the path page lists its references", async () => {
  await page.fill("#q", "");
  await page.press("#q", "Enter");
  await page.getByRole("link", { name: top.split("/").pop()! }).click();
  await heading(page, top.split("/").pop()!);
  expect(await page.locator("#references a").allTextContents()).toEqual([dep.split("/").pop()!]);
  await shots(page, "path");
});

test("the server page, for a token with every permission on *", async () => {
  await page.goto(`${server.url}/#/server`);
  await heading(page, "Server");
  expect(await page.locator("main dl").textContent()).toContain(process.env.GARRET_TEST_DATABASE_URL ? "postgresql" : "sqlite");
  await shots(page, "server");
});

test("a substituter URL opened in a browser lands on the cache page", async () => {
  await page.goto(`${server.url}/a-priv/`);
  await heading(page, "a-priv");
  expect(new URL(page.url()).hash).toBe("#/cache/a-priv");
  await page.goto(`${server.url}/a-pub`);
  await heading(page, "a-pub");
});

test("after sign-in the token is in no URL, no localStorage, no server log line", async () => {
  expect(await page.evaluate(() => localStorage.length)).toBe(0);
  expect(await page.evaluate(() => sessionStorage.getItem("garret-token"))).toBe(admin);
  expect(urls.length).toBeGreaterThan(10);
  for (const u of urls) expect(u).not.toContain(admin);
  expect(server.log()).not.toContain(admin);
  expect(server.log()).not.toContain(admin.split(".")[2]!);
});

test("a token for a-* sees only a-* caches; a private cache it cannot see looks missing", async () => {
  const other = await browser.newPage();
  await other.goto(`${server.url}/`);
  expect(await cacheNames(other)).toEqual(["a-pub"]);
  await signIn(other, tokenA);
  await other.locator("main tbody tr", { hasText: "a-priv" }).waitFor();
  expect(await cacheNames(other)).toEqual(["a-priv", "a-pub"]);
  await other.goto(`${server.url}/b-priv`);
  await heading(other, "Not found");
  await shots(other, "not-found");
  expect(server.log()).not.toContain(tokenA);
  await other.close();
});
