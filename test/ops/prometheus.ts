/**
 * A strict parser of Prometheus' text exposition format (0.0.4), for tests: every line must be a
 * HELP, a TYPE or a sample of a declared family; names, label names and escapes follow the
 * grammar; a series appears once; histograms have cumulative buckets ending in +Inf = _count.
 * Anything else throws, naming the line.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string | null;
  samples: Sample[];
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(text: string, where: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new Error(`${where}: label without =`);
    const name = text.slice(i, eq);
    if (!LABEL.test(name) || name.startsWith("__")) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
    let j = eq + 2;
    let value = "";
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === "\n") throw new Error(`${where}: raw newline in label value`);
      if (c === "\\") {
        const e = text[j + 1];
        if (e === "\\") value += "\\";
        else if (e === '"') value += '"';
        else if (e === "n") value += "\n";
        else throw new Error(`${where}: bad escape \\${e}`);
        j += 2;
        continue;
      }
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (i < text.length) {
      if (text[i] !== ",") throw new Error(`${where}: expected , between labels`);
      i++;
    }
  }
  return labels;
}

function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sampleName.endsWith(suffix)) continue;
    const f = families.get(sampleName.slice(0, -suffix.length));
    if (f && (f.type === "histogram" || (f.type === "summary" && suffix !== "_bucket"))) return f;
  }
  return undefined;
}

export function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line === "") throw new Error(`${where}: empty line`);
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!METRIC.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      let f = families.get(name);
      if (kind === "TYPE") {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(rest)) throw new Error(`${where}: bad type ${rest}`);
        if (f && f.samples.length) throw new Error(`${where}: TYPE after samples of ${name}`);
        if (f?.type && (f as { typed?: boolean }).typed) throw new Error(`${where}: TYPE of ${name} twice`);
        f ??= { name, type: "untyped", help: null, samples: [] };
        f.type = rest as Family["type"];
        (f as { typed?: boolean }).typed = true;
        families.set(name, f);
      } else {
        f ??= { name, type: "untyped", help: null, samples: [] };
        if (f.help !== null) throw new Error(`${where}: HELP of ${name} twice`);
        f.help = rest;
        families.set(name, f);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const labels = m[2] ? parseLabels(m[2], where) : {};
    const value = parseValue(m[3]!, where);
    const f = familyOf(name, families);
    if (!f || !(f as { typed?: boolean }).typed) throw new Error(`${where}: sample of undeclared family ${name}`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`${where}: series ${key} twice`);
    seen.add(key);
    if (f.type === "counter" && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`);
    if (name.endsWith("_bucket") && f.type === "histogram" && !("le" in labels)) throw new Error(`${where}: bucket without le`);
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) {
    if (f.type !== "histogram") continue;
    const buckets = f.samples.filter((s) => s.name === `${f.name}_bucket`);
    const count = f.samples.find((s) => s.name === `${f.name}_count`);
    if (!count || !f.samples.some((s) => s.name === `${f.name}_sum`)) throw new Error(`${f.name}: histogram without _sum/_count`);
    let last = -Infinity;
    let prev = 0;
    for (const b of buckets) {
      const le = parseValue(b.labels.le!, f.name);
      if (!(le > last)) throw new Error(`${f.name}: buckets out of order`);
      if (b.value < prev) throw new Error(`${f.name}: buckets not cumulative`);
      last = le;
      prev = b.value;
    }
    if (last !== Infinity || prev !== count.value) throw new Error(`${f.name}: +Inf bucket missing or not _count`);
  }
  return families;
}

/** The sum of a family's samples named `name` whose labels include `match`. */
export function total(families: Map<string, Family>, name: string, match: Record<string, string> = {}): number {
  const base = name.replace(/_(bucket|sum|count)$/, "");
  const f = families.get(name) ?? families.get(base);
  if (!f) throw new Error(`no family ${name}`);
  return f.samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
