/**
 * The executable starts with the JIT reluctant to compile (scripts/build.ts), which suits client
 * commands that live for milliseconds. A command that runs for hours (serve, watch-store,
 * queue --worker) calls this first to get the normal JIT back.
 */
export function runsLong(): void {
  Bun.unsafe.setJITPolicy(1);
}
