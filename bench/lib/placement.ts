import { cpus } from 'node:os';
import { pinToCpus } from './processes.ts';

const placeable = new Set<number>();

/** Adds a process to those that `placeFor` moves around: helpers, load generators and servers. */
export function registerProcess(pid: number): void {
  placeable.add(pid);
}

export function unregisterProcess(pid: number): void {
  placeable.delete(pid);
}

/**
 * Lays out the CPUs for one measurement. One server process gets the last core to itself and every other
 * registered process (the harness, Redis, the store, load generators, idle servers) shares the rest.
 * Several server processes (replicas) get one core each from the last down, and the others may use every
 * core, because on a two-core machine there is no core left to keep them apart.
 * Does nothing on a single core or without taskset; returns the layout as text for the log.
 */
export function placeFor(serverPids: number[]): string {
  // Not availableParallelism(): it follows this process' own affinity, which an earlier call narrowed.
  const cores = cpus().length;
  if (cores < 2) return 'not pinned: one core';
  const servers = new Set(serverPids);
  // No server at all is a yardstick that runs without the backend: the backend's core stays idle then too.
  const helperCpus = servers.size <= 1 ? `0-${cores - 2}` : `0-${cores - 1}`;
  let pinned = true;
  for (const pid of placeable) {
    if (servers.has(pid)) continue;
    try {
      pinned = pinToCpus(pid, helperCpus) && pinned;
    } catch {
      // The process exited between two measurements; it no longer competes for a core.
      placeable.delete(pid);
    }
  }
  serverPids.forEach((pid, index) => {
    pinned = pinToCpus(pid, String((cores - 1 - index + cores) % cores)) && pinned;
  });
  if (!pinned) return 'not pinned: taskset is missing';
  return `servers on core ${serverPids.map((_, i) => (cores - 1 - i + cores) % cores).join(',')}, others on ${helperCpus}`;
}
