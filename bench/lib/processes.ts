import { spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Resident set size of a process in bytes, from VmRSS in /proc/PID/status. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS line in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** User plus system CPU time of a process in seconds, from /proc/PID/stat (clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name in brackets may contain spaces, so count fields after its closing bracket.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

let tasksetAvailable: boolean | null = null;

/**
 * Restricts every thread of a process to the listed CPUs (`taskset` syntax, such as "1" or "0-1").
 * Threads the process starts later inherit the setting. Returns false when taskset is missing.
 */
export function pinToCpus(pid: number, cpus: string): boolean {
  tasksetAvailable ??= spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!tasksetAvailable) return false;
  const result = spawnSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`taskset failed for pid ${pid}: ${result.stderr.trim()}`);
  return true;
}

/** Waits for a child to exit; resolves at once when it already has. */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Sends `signal` to a child through its handle and waits for the exit; SIGKILL after `timeoutMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await done;
  clearTimeout(timer);
}

/** Memory of a Node.js process after a full garbage collection. */
export interface MemoryReading {
  /** VmRSS in bytes. */
  rss: number;
  /** Physical bytes of V8's young generation, empty after the GC but still resident. */
  young: number;
}

/**
 * Memory after garbage collection, with V8's heap as small as V8 makes it on its own. V8 hands free heap
 * pages back to the kernel and shrinks its young generation only in its memory reducer, which runs about
 * 8 s after a full GC once the process allocates little. So this runs one full GC, waits `reducerWaitMs`
 * for the reducer, then takes three readings, each after another GC, and returns the lowest: free pages
 * only ever add to RSS.
 */
export async function lowestMemory(collect: () => Promise<number>, readRss: () => number, reducerWaitMs: number): Promise<MemoryReading> {
  await collect();
  await new Promise((resolve) => setTimeout(resolve, reducerWaitMs));
  let lowest: MemoryReading | null = null;
  for (let i = 0; i < 3; i++) {
    const young = await collect();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const current = { rss: readRss(), young };
    if (lowest === null || current.rss - current.young < lowest.rss - lowest.young) lowest = current;
  }
  return lowest as MemoryReading;
}
