/**
 * The server's counters, rendered in Prometheus' text format (version 0.0.4) at /metrics. Kept in
 * plain maps: a label set is built from a bounded vocabulary (a route's class, a status code, a
 * method), never from a cache name or a hash, so the series count stays small.
 */

type Labels = Record<string, string>;

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const NEEDS_ESCAPE = /[\\"\n]/;

const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** `{k="v",...}`; built on every counted request, so plain values (all of them, in practice) skip the escaping. */
function labelText(labels: Labels): string {
  let text = "";
  for (const k of Object.keys(labels)) {
    const v = labels[k]!;
    text += `${text ? "," : ""}${k}="${NEEDS_ESCAPE.test(v) ? escapeLabel(v) : v}"`;
  }
  return text ? `{${text}}` : "";
}

class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const v = this.values.get(key);
    if (v) v.value += by;
    else this.values.set(key, { labels, value: by });
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    if (this.values.size === 0) out.push(`${this.name} 0`);
    for (const { labels, value } of this.values.values()) out.push(`${this.name}${labelText(labels)} ${value}`);
  }
}

class Histogram {
  private readonly counts = LATENCY_BUCKETS.map(() => 0);
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string) {}
  observe(seconds: number): void {
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]!) this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    LATENCY_BUCKETS.forEach((le, i) => out.push(`${this.name}_bucket{le="${le}"} ${this.counts[i]}`));
    out.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
  }
}

/** What the server counts; the HTTP wrapper, uploads and the collector feed it. */
export class Metrics {
  readonly requests = new Counter("garret_http_requests_total", "HTTP requests by route class, method and status.");
  readonly bytesIn = new Counter("garret_http_received_bytes_total", "Request body bytes received (uploads), by route class.");
  readonly bytesOut = new Counter("garret_http_sent_bytes_total", "Response body bytes sent (as declared by Content-Length), by route class.");
  readonly uploadSeconds = new Histogram("garret_upload_duration_seconds", "Time to handle an upload, body streaming included.");
  readonly narinfoSeconds = new Histogram("garret_narinfo_duration_seconds", "Time to answer a narinfo request.");
  readonly dedupSaved = new Counter("garret_dedup_saved_bytes_total", "NAR bytes not stored again because a chunk or NAR was already there.");
  readonly uploads = new Counter("garret_uploads_total", "Committed uploads by kind (Uploaded, Deduplicated).");
  readonly gcRuns = new Counter("garret_gc_runs_total", "Garbage collections run by the server, by result.");
  readonly gcFreedBytes = new Counter("garret_gc_freed_bytes_total", "Storage bytes freed by the server's garbage collections.");
  readonly gcRemoved = new Counter("garret_gc_removed_total", "Records removed by the server's garbage collections, by kind.");
  readonly errors = new Counter("garret_errors_total", "Internal errors by component (storage, database, other).");
  private uploadsInFlight = 0;

  uploadStarted(): void {
    this.uploadsInFlight++;
  }

  uploadEnded(): void {
    this.uploadsInFlight--;
  }

  render(): string {
    const out: string[] = [];
    for (const c of [this.requests, this.bytesIn, this.bytesOut]) c.render(out);
    this.uploadSeconds.render(out);
    this.narinfoSeconds.render(out);
    for (const c of [this.dedupSaved, this.uploads, this.gcRuns, this.gcFreedBytes, this.gcRemoved, this.errors]) c.render(out);
    out.push("# HELP garret_uploads_in_flight Uploads being received right now.", "# TYPE garret_uploads_in_flight gauge",
      `garret_uploads_in_flight ${this.uploadsInFlight}`);
    return out.join("\n") + "\n";
  }
}
