/**
 * `npm run build`: the single executable dist/garret, with the version and commit baked in.
 *   bun scripts/build.ts [--outfile PATH]
 */
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

const repo = resolve(import.meta.dir, "..");
const outIndex = process.argv.indexOf("--outfile");
const outfile = outIndex > 0 ? resolve(process.argv[outIndex + 1]!) : join(repo, "dist/garret");
const git = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: repo });
const commit = git.exitCode === 0 ? git.stdout.toString().trim() : "unknown";
const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { cwd: repo }).stdout.toString().trim() !== "";

// A client command pays the start-up on every run. --bytecode (which needs ESM output) stores the
// code precompiled, and --splitting keeps each subcommand's modules (the server's Elysia and S3
// SDK, say) out of the others' start: `garret push` starts in 12 ms instead of 60 ms. The source
// maps (one per chunk, named by content hash, and <binary>.map) land beside the binary, which does
// not need them: the build goes to a scratch dir and only the binary moves to its place, so the
// output dir holds the binary alone. Maps an earlier build left there are dropped too.
const outDir = dirname(outfile);
mkdirSync(outDir, { recursive: true });
for (const f of readdirSync(outDir)) {
  if (/^[\w-]+-[a-z0-9]{8}\.js\.map$/.test(f) || f === `${basename(outfile)}.map`) rmSync(join(outDir, f));
  // The scratch dir of a build that was killed.
  if (/^\.build-\w{6}$/.test(f)) rmSync(join(outDir, f), { recursive: true, force: true });
}
const scratch = mkdtempSync(join(outDir, ".build-"));
// The executable never reads a .env or bunfig.toml from wherever it is started: garret's settings
// come from its config file, GARRET_* variables and flags, not from files that happen to lie in
// the working directory. It starts with the JIT ten times more reluctant to compile: a client
// command lives for tens of milliseconds and compiling its run-once code was wasted work (a push
// of 50 paths spent 3-5 ms less CPU, a cached push finished about 1 ms sooner); the long-running
// commands (serve, watch-store, queue --worker) set the normal policy back (src/cli/long-running.ts).
const proc = Bun.spawnSync([process.execPath, "build", "--compile", "--minify", "--sourcemap", "--format", "esm", "--bytecode", "--splitting",
  "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--compile-jit-policy", "10",
  "--define", `GARRET_COMMIT=${JSON.stringify(dirty ? `${commit}-dirty` : commit)}`,
  join(repo, "src/main.ts"), "--outfile", join(scratch, basename(outfile))], { cwd: repo, stdout: "inherit", stderr: "inherit" });
if (proc.exitCode === 0) renameSync(join(scratch, basename(outfile)), outfile);
rmSync(scratch, { recursive: true, force: true });
if (proc.exitCode !== 0) process.exit(proc.exitCode ?? 1);
console.log(`built ${outfile} (commit ${commit}${dirty ? ", with uncommitted changes" : ""})`);
