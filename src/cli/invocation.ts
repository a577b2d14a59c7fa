/**
 * How the user runs garret, for the commands garret prints: `garret` for the compiled executable,
 * `npx garret` from a source checkout (`npm start`), where no `garret` is on the PATH. A compiled
 * Bun executable runs its modules from its embedded file system, /$bunfs/.
 */
export function selfCommand(modulePath: string = import.meta.path): string {
  return modulePath.startsWith("/$bunfs/") || /^[A-Z]:[\\/]~BUN[\\/]/.test(modulePath) ? "garret" : "npx garret";
}

/** The alias the printed next steps use, as setup's `--alias` default and the README. */
export const DEFAULT_ALIAS = "garret";
