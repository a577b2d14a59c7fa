export * from "./errors.ts";
export * from "./base32.ts";
export * from "./hash.ts";
export * from "./store-path.ts";
export * from "./narinfo.ts";
export * from "./signing.ts";
export * from "./nar.ts";
