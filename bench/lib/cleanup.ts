import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();

/**
 * Remembers a child process so that it is killed, by its handle, when the harness exits for any reason
 * (an error, Ctrl-C). Children that exit on their own leave the set.
 */
export function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

process.once('exit', () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
