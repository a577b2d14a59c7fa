/**
 * Every parse or validation failure in src/nix throws this, so callers can map "the client sent
 * something malformed" to a 400 with one `instanceof` check and pass the one-line message on.
 */
export class NixFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NixFormatError";
  }
}
