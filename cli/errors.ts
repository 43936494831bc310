/**
 * Exit codes of the CLI, documented in docs/operators.md. This module loads nothing else, so commands that
 * only call the operator API start without the storage clients.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, unavailable: 3, conflict: 4, incomplete: 5, auth: 6 } as const;

/** A failure the CLI reports as `fleet: MESSAGE` on stderr before it exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
