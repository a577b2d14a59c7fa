/**
 * Preloaded before every test file (bunfig.toml): once all tests have run, the temp dirs they
 * made (data dirs, logs, expressions) go. Servers are stopped by their tests' afterAll hooks,
 * which run before this one.
 */
import { afterAll } from "bun:test";
import { removeTempDirs } from "./nix.ts";

afterAll(removeTempDirs);
