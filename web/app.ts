/**
 * The dashboard (issue 14): one small page script, no framework. Every figure comes from the
 * JSON API with the caller's token; what a page shows is what the server answers for that token.
 * The token lives in sessionStorage only and is sent as a Bearer header, never in a URL.
 * The server transpiles this file once at start (type imports vanish; no other imports allowed).
 */
import type {
  CacheStatsAnswer, CachesAnswer, CacheSummary, PathAnswer, PathsAnswer, PinsAnswer, ServerStatsAnswer,
} from "../src/api/garret.ts";

const TOKEN_KEY = "garret-token";
const main = document.getElementById("main")!;

// --- tiny DOM helpers: text always goes through textContent, never HTML.
type Child = Node | string | null | undefined | false;
function h(tag: string, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

const token = (): string | null => sessionStorage.getItem(TOKEN_KEY);

class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

async function api<T>(path: string): Promise<T> {
  const t = token();
  const res = await fetch(path, { headers: t ? { authorization: `Bearer ${t}` } : {}, cache: "no-store" });
  const body = await res.json().catch(() => null) as { error?: string; message?: string } | null;
  if (!res.ok) throw new ApiError(res.status, body?.error ?? "Error", body?.message ?? `HTTP ${res.status}`);
  return body as T;
}

// --- formatting
function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
const when = (t: number | null): string => (t === null ? "never" : new Date(t * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC");
const ratio = (r: number): string => `${r.toFixed(2)}×`;
const share = (nar: number, file: number): string => (nar > 0 ? `${Math.max(0, Math.round((1 - file / nar) * 100))}%` : "–");
const base = (p: string): string => p.split("/").pop() ?? p;
const cacheHref = (c: string): string => `/#/cache/${encodeURIComponent(c)}`;
const pathHref = (c: string, hash: string): string => `${cacheHref(c)}/path/${encodeURIComponent(hash)}`;

function copyBlock(label: string, text: string): HTMLElement {
  const pre = h("pre", {}, h("code", {}, text));
  const button = h("button", {
    type: "button", "aria-label": `Copy ${label}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(pre);
        getSelection()?.removeAllRanges();
        getSelection()?.addRange(range);
        button.textContent = "Selected";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    },
  }, "Copy");
  return h("div", { class: "copy" }, pre, button);
}

function fields(rows: [string, Child][]): HTMLElement {
  const dl = h("dl");
  for (const [k, v] of rows) dl.append(h("dt", {}, k), h("dd", {}, v));
  return dl;
}

function show(title: string, ...content: Child[]): void {
  document.title = `${title} · garret`;
  main.replaceChildren(h("h1", {}, title), ...content.filter((c): c is Node | string => !!c));
  main.focus({ preventScroll: true });
}

function failure(err: unknown): void {
  if (err instanceof ApiError && err.status === 404) show("Not found", h("p", {}, err.message, " Sign in with a token that may see it."));
  else if (err instanceof ApiError && (err.status === 401 || err.status === 403)) show("Not allowed", h("p", {}, err.message));
  else show("Error", h("p", { class: "error" }, err instanceof Error ? err.message : String(err)));
}

// --- sortable, filterable table
interface Column<T> { label: string; value: (r: T) => string | number; cell?: (r: T) => Child; num?: boolean; narrow?: boolean }

function sortableTable<T>(caption: string, rows: T[], columns: Column<T>[], filterOf: (r: T) => string): HTMLElement {
  let sortBy = 0;
  let dir = 1;
  let filter = "";
  const tbody = h("tbody");
  const heads = columns.map((c, i) => {
    const button = h("button", { type: "button", onclick: () => { dir = sortBy === i ? -dir : 1; sortBy = i; render(); } }, c.label);
    return h("th", { scope: "col", class: `${c.num ? "num" : ""} ${c.narrow ? "" : "hide-narrow"}`.trim() }, button);
  });
  function render(): void {
    heads.forEach((th, i) => th.setAttribute("aria-sort", i === sortBy ? (dir > 0 ? "ascending" : "descending") : "none"));
    const col = columns[sortBy]!;
    const shown = rows.filter((r) => filterOf(r).toLowerCase().includes(filter.toLowerCase()))
      .sort((a, b) => { const x = col.value(a), y = col.value(b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
    tbody.replaceChildren(...shown.map((r) => h("tr", {}, ...columns.map((c) =>
      h("td", { class: `${c.num ? "num" : ""} ${c.narrow ? "" : "hide-narrow"}`.trim() }, c.cell ? c.cell(r) : String(c.value(r)))))));
    if (shown.length === 0) tbody.append(h("tr", {}, h("td", { colspan: String(columns.length), class: "muted" }, "Nothing to show.")));
  }
  const input = h("input", { type: "search", id: "filter", "aria-label": "Filter", placeholder: "filter",
    oninput: (e: Event) => { filter = (e.target as HTMLInputElement).value; render(); } });
  render();
  return h("div", {}, h("div", { class: "toolbar" }, h("label", { for: "filter" }, "Filter"), input),
    h("div", { class: "table-wrap" }, h("table", {}, h("caption", { class: "muted" }, caption), h("thead", {}, h("tr", {}, ...heads)), tbody)));
}

// --- pages
async function cachesPage(): Promise<void> {
  const { caches } = await api<CachesAnswer>("/_api/v1/caches");
  show("Caches", sortableTable<CacheSummary>(token() ? "Caches your token may see" : "Public caches (sign in to see more)", caches, [
    { label: "Cache", value: (c) => c.name, cell: (c) => h("a", { href: cacheHref(c.name) }, c.name), narrow: true },
    { label: "Paths", value: (c) => c.paths, num: true, narrow: true },
    { label: "Logical", value: (c) => c.nar_bytes, cell: (c) => bytes(c.nar_bytes), num: true, narrow: true },
    { label: "Stored", value: (c) => c.stored_bytes, cell: (c) => bytes(c.stored_bytes), num: true },
    { label: "Dedup", value: (c) => c.dedup_ratio, cell: (c) => ratio(c.dedup_ratio), num: true },
    { label: "Last push", value: (c) => c.last_push_at ?? 0, cell: (c) => when(c.last_push_at) },
    { label: "Visibility", value: (c) => (c.is_public ? "public" : "private") },
    { label: "Priority", value: (c) => c.priority, num: true },
  ], (c) => c.name));
}

/** Cumulative logical vs stored bytes per day, as an inline SVG. */
function chart(history: CacheStatsAnswer["history"]): HTMLElement {
  const W = 600, H = 160, P = 4;
  let nar = 0, stored = 0;
  const points = history.map((d) => ({ day: d.day, nar: (nar += d.nar_bytes), stored: (stored += d.stored_bytes) }));
  if (points.length === 1) points.unshift({ day: points[0]!.day - 86400, nar: 0, stored: 0 });
  const max = Math.max(1, ...points.map((p) => p.nar));
  const t0 = points[0]?.day ?? 0, t1 = points[points.length - 1]?.day ?? 1;
  const x = (t: number): number => P + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * P);
  const y = (v: number): number => H - P - (v / max) * (H - 2 * P);
  const line = (key: "nar" | "stored"): string => points.map((p, i) => `${i ? "L" : "M"}${x(p.day).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Logical ${bytes(nar)} vs stored ${bytes(stored)} over the last 90 days`);
  for (const [key, color] of [["nar", "var(--logical)"], ["stored", "var(--stored)"]] as const) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", line(key));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", color);
    path.setAttribute("stroke-width", "2");
    svg.append(path);
  }
  const axis = document.createElementNS(ns, "path");
  axis.setAttribute("d", `M${P},${H - P} H${W - P}`);
  axis.setAttribute("stroke", "var(--line)");
  svg.append(axis);
  return h("figure", { class: "chart" }, svg, h("figcaption", { class: "legend" },
    h("span", { class: "l" }, `■ logical ${bytes(nar)}`), h("span", { class: "s" }, `■ stored ${bytes(stored)}`),
    points.length === 0 ? "no pushes in the last 90 days" : ""));
}

function pathsTable(cache: string, paths: PathsAnswer["paths"], tbody: HTMLElement): void {
  for (const p of paths) {
    tbody.append(h("tr", {},
      h("td", {}, h("a", { href: pathHref(cache, p.hash) }, base(p.store_path))),
      h("td", { class: "num" }, bytes(p.nar_size)),
      h("td", { class: "hide-narrow" }, when(p.created_at)),
      h("td", { class: "num hide-narrow" }, share(p.nar_size, p.file_size)),
      h("td", { class: "hide-narrow" }, p.created_by ?? "")));
  }
}

async function cachePage(name: string): Promise<void> {
  const s = await api<CacheStatsAnswer>(`/_api/v1/caches/${encodeURIComponent(name)}/stats`);
  const pins = await api<PinsAnswer>(`/_api/v1/pins/${encodeURIComponent(name)}`).catch(() => ({ pins: [] }) as PinsAnswer);
  const conf = `extra-substituters = ${s.substituter_endpoint}\nextra-trusted-public-keys = ${s.public_key}`;
  const tbody = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "More");
  const status = h("p", { class: "muted", "aria-live": "polite" });
  let cursor: string | null = null;
  let q = "";
  async function load(reset: boolean): Promise<void> {
    const params = new URLSearchParams({ limit: "50" });
    if (q) params.set("q", q);
    if (!reset && cursor) params.set("cursor", cursor);
    try {
      const page = await api<PathsAnswer>(`/_api/v1/caches/${encodeURIComponent(name)}/paths?${params}`);
      if (reset) tbody.replaceChildren();
      pathsTable(name, page.paths, tbody);
      cursor = page.next_cursor;
      more.hidden = cursor === null;
      status.textContent = tbody.children.length === 0 ? "No paths match." : `${tbody.children.length} shown`;
    } catch (err) {
      status.textContent = err instanceof Error ? err.message : String(err);
    }
  }
  more.addEventListener("click", () => void load(false));
  const search = h("form", { role: "search", class: "toolbar", onsubmit: (e: Event) => {
    e.preventDefault();
    q = ((e.target as HTMLFormElement).elements.namedItem("q") as HTMLInputElement).value.trim();
    cursor = null;
    void load(true);
  } }, h("label", { for: "q" }, "Search by name or hash"), h("input", { id: "q", name: "q", type: "search", maxlength: "100" }),
    h("button", { type: "submit" }, "Search"));
  show(name,
    fields([
      ["Substituter", h("code", {}, s.substituter_endpoint)], ["Public key", h("code", { id: "public-key" }, s.public_key)],
      ["Visibility", s.is_public ? "public" : "private"], ["Priority", String(s.priority)],
      ["Paths", String(s.paths)], ["Logical bytes", bytes(s.nar_bytes)], ["Stored bytes", bytes(s.stored_bytes)],
      ["Dedup ratio", ratio(s.dedup_ratio)], ["Last push", when(s.last_push_at)],
      ["Retention", s.retention_period === null ? "server default" : `${Math.round(s.retention_period / 86400)} days`],
      ["Quota", s.quota_bytes === null ? "none" : bytes(s.quota_bytes)],
    ]),
    h("h2", {}, "Use it"),
    h("p", {}, "With the garret client (after ", h("code", {}, "garret login ALIAS URL TOKEN"), "):"),
    copyBlock("garret use command", `garret use ALIAS:${name}`),
    h("p", {}, "Or by hand, in nix.conf:"),
    copyBlock("nix.conf lines", conf),
    h("h2", {}, "Logical vs stored bytes"), chart(s.history),
    h("h2", {}, "Recent pushes"), search,
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Store path"), h("th", { scope: "col", class: "num" }, "NAR size"),
      h("th", { scope: "col", class: "hide-narrow" }, "Pushed"), h("th", { scope: "col", class: "num hide-narrow" }, "Deduplicated"),
      h("th", { scope: "col", class: "hide-narrow" }, "Uploader"))), tbody)),
    status, more,
    h("h2", {}, "Pins"),
    pins.pins.length === 0 ? h("p", { class: "muted" }, "No pins.")
      : h("ul", {}, ...pins.pins.map((p) => h("li", {}, h("code", {}, p.name), " → ", base(p.store_path)))),
  );
  await load(true);
}

async function pathPage(cache: string, hash: string): Promise<void> {
  const [p, s] = await Promise.all([
    api<PathAnswer>(`/_api/v1/caches/${encodeURIComponent(cache)}/paths/${encodeURIComponent(hash)}`),
    api<CacheStatsAnswer>(`/_api/v1/caches/${encodeURIComponent(cache)}/stats`),
  ]);
  const link = (b: string): HTMLElement => h("li", {}, h("a", { href: pathHref(cache, b.slice(0, 32)) }, b));
  const narUrl = `${s.substituter_endpoint}/${p.nar_url}`;
  show(base(p.store_path),
    h("p", {}, "In cache ", h("a", { href: cacheHref(cache) }, cache)),
    fields([
      ["StorePath", h("code", {}, p.store_path)], ["NarHash", h("code", {}, p.nar_hash)], ["NarSize", `${p.nar_size} (${bytes(p.nar_size)})`],
      ["FileSize", `${p.file_size} (${bytes(p.file_size)})`], ["Compression", p.compression],
      ["Deriver", p.deriver ?? "–"], ["System", p.system ?? "–"], ["CA", p.ca ?? "–"],
      ["Closure size", `${bytes(p.closure_size)} in ${p.closure_paths} paths`],
      ["NAR", h("a", { href: narUrl, download: "" }, p.nar_url)],
    ]),
    h("h2", {}, "Fetch it"),
    copyBlock("nix-store command", `nix-store -r ${p.store_path} --option extra-substituters ${s.substituter_endpoint} --option extra-trusted-public-keys ${s.public_key}`),
    h("h2", {}, `References (${p.references.length})`),
    p.references.length ? h("ul", { id: "references" }, ...p.references.map(link)) : h("p", { class: "muted" }, "None."),
    h("h2", {}, `Referrers (${p.referrers.length})`),
    p.referrers.length ? h("ul", { id: "referrers" }, ...p.referrers.map(link)) : h("p", { class: "muted" }, "None in this cache."),
  );
}

async function serverPage(): Promise<void> {
  const s = await api<ServerStatsAnswer>("/_api/v1/server/stats");
  show("Server", fields([
    ["Version", s.version], ["Uptime", `${Math.floor(s.uptime_seconds / 3600)} h ${Math.floor((s.uptime_seconds % 3600) / 60)} min`],
    ["Storage", s.storage], ["Database", s.database], ["Caches", String(s.caches)], ["Paths", String(s.paths)],
    ["Logical bytes", bytes(s.nar_bytes)], ["Distinct NARs", `${s.nars} (${bytes(s.unique_nar_bytes)})`],
    ["Chunks", `${s.chunks} (${bytes(s.chunk_bytes)} uncompressed)`], ["Stored bytes", bytes(s.stored_bytes)],
    ["Packs", `${s.packs} (${bytes(s.pack_bytes)})`], ["Global dedup ratio", ratio(s.dedup_ratio)],
  ]), h("h2", {}, "Last garbage collections"),
  s.gc_runs.length === 0 ? h("p", { class: "muted" }, "None since the server started.")
    : h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ...["When", "Result", "Freed", "Paths", "Chunks", "Packs"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...s.gc_runs.map((r) => h("tr", {}, h("td", {}, when(r.at)), h("td", {}, r.result), h("td", { class: "num" }, bytes(r.freed_bytes)),
        h("td", { class: "num" }, String(r.objects)), h("td", { class: "num" }, String(r.chunks)), h("td", { class: "num" }, String(r.packs))))))));
}

// --- routing: /#/, /#/cache/<name>, /#/cache/<name>/path/<hash>, /#/server. A substituter URL
// opened in a browser (/<cache> or /<cache>/) is served this page and becomes /#/cache/<cache>.
async function route(): Promise<void> {
  const direct = /^\/([A-Za-z0-9][A-Za-z0-9\-_+]{0,49})\/?$/.exec(location.pathname);
  if (direct) {
    history.replaceState(null, "", `/#/cache/${direct[1]}`);
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "cache" && parts[1] && parts[2] === "path" && parts[3]) await pathPage(parts[1], parts[3]);
    else if (parts[0] === "cache" && parts[1]) await cachePage(parts[1]);
    else if (parts[0] === "server") await serverPage();
    else await cachesPage();
  } catch (err) {
    failure(err);
  }
}

function signedIn(): void {
  const on = token() !== null;
  document.getElementById("signin")!.hidden = on;
  document.getElementById("signedin")!.hidden = !on;
}

document.getElementById("signin")!.addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("token") as HTMLInputElement;
  const value = input.value.trim();
  input.value = "";
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  signedIn();
  void route();
});
document.getElementById("signout")!.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  signedIn();
  void route();
});
addEventListener("hashchange", () => void route());
signedIn();
void route();
