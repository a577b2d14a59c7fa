/** A mistake in how a command was invoked: printed as one line, exit code 2. */
export class UsageError extends Error {}

/** A failure the user can act on (server said no, file missing): one line, exit code 1. */
export class CliError extends Error {}
