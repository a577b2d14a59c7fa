/** unbzip2-stream ships no types: it exports a factory of a through (Duplex) stream. */
declare module "unbzip2-stream" {
  import type { Duplex } from "node:stream";
  export default function unbzip2(): Duplex;
}
