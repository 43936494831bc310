import { readFileSync } from 'node:fs';
import { CommanderError, type Command } from 'commander';
import { EXIT } from './errors.ts';

/** Builds the full command path, such as `fleet patch upload`, for the hint after a usage error. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current; current = current.parent) names.unshift(current.name());
  return names.join(' ');
}

/**
 * Makes commander throw instead of exiting and print its parse errors as `fleet: usage: MESSAGE`. Call it
 * before adding subcommands, because a subcommand copies these settings from its parent when it is created.
 */
export function reportUsageErrors(program: Command): Command {
  return program.exitOverride().configureOutput({
    outputError: (text, write) => write(`fleet: usage: ${text.replace(/^error: /, '')}`),
  });
}

/** Adds, after every usage error, a one-line hint naming the `--help` of the command that raised it. */
export function addHelpHints(command: Command): void {
  command.showHelpAfterError(`run '${commandPath(command)} --help' for the usage`);
  for (const sub of command.commands) addHelpHints(sub);
}

/**
 * Returns the exit code for an error that commander threw, or null for any other error. Help and the version
 * printed on request end with 0. Every parse error is invalid usage, and so is a command run without its
 * subcommand, for which commander prints the help to stderr.
 */
export function commanderExitCode(err: unknown): number | null {
  if (!(err instanceof CommanderError)) return null;
  return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
}

/** Reads the version from package.json, which is one folder up from cli/ and two up from dist/cli/. */
export function packageVersion(): string {
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const json = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (json.name === 'camera-fleet' && json.version) return json.version;
    } catch {
      // Not this folder: try the next one up.
    }
  }
  return 'unknown';
}
