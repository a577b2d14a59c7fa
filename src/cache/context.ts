import type { MetaStore } from "../db/types.ts";
import type { Storage } from "../store/storage.ts";
import type { IngestOptions } from "../store/ingest.ts";
import type { TokenAuthority } from "../auth/token.ts";
import type { Revocations } from "../auth/revocation.ts";
import type { AccessTracker } from "../gc/access.ts";
import type { HotBytes } from "../store/hot-bytes.ts";
import type { UploadLimits } from "./native-push.ts";
import type { Metrics } from "./metrics.ts";

/** Everything the domain operations need, built once by `garret serve`. */
export interface Garret {
  meta: MetaStore;
  storage: Storage;
  tokens: TokenAuthority;
  /** Revoked token ids and subs (shared metadata, short cache); absent = nothing is checked. */
  revocations?: Revocations;
  ingest: IngestOptions;
  /** Used to build absolute endpoints in cache-config answers, e.g. http://cache.example.com */
  publicUrl: string;
  /** False when publicUrl is only the listen address: answers then advertise the request's origin. */
  publicUrlConfigured?: boolean;
  /** Records narinfo/NAR fetches for retention (batched); absent = not tracked. */
  access?: AccessTracker;
  /** `[upload]` staging limits of native NAR PUTs; absent = the defaults. */
  upload?: UploadLimits;
  /** Small NARs served lately, kept in memory; absent = always read from storage. */
  narMemory?: HotBytes;
  /** The server's counters for /metrics; absent = not counted (commands other than serve). */
  metrics?: Metrics;
  /** The collector's retention of "Global" caches (seconds, 0 = forever); absent = unknown, taken as 0. */
  defaultRetention?: number;
  /** The last collections this server ran (newest last, at most 10), for the dashboard's server page. */
  gcRuns?: GcRunRecord[];
}

/** One collection run by garret serve, as the dashboard's server page shows it. */
export interface GcRunRecord {
  at: number; // seconds
  result: "ok" | "failed";
  freedBytes: number;
  objects: number;
  chunks: number;
  packs: number;
}
