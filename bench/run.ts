/**
 * Benchmark harness: `npm run bench` (full run, about 20 minutes on 2 cores) or `npm run bench -- --quick`
 * (a smoke run of about 3 minutes). Starts everything it measures on 127.0.0.1: a private Redis, the patch
 * store, the backend, the yardstick peers and the load generators. docs/benchmarks.md explains each figure.
 */
import './lib/quiet-sdk.ts';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { reportFigure, type FigureReport, type FigureSeries } from './lib/figures.ts';
import { makePlan } from './lib/plan.ts';
import { registerProcess } from './lib/placement.ts';
import { formatTable } from './lib/report.ts';
import { startStack, type BenchContext } from './lib/stack.ts';
import { targetFor } from './lib/targets.ts';
import { runFanOut } from './scenarios/fanout.ts';
import { runIngest } from './scenarios/ingest.ts';
import { runMemory } from './scenarios/memory.ts';
import { runRollout } from './scenarios/rollout.ts';

const SCENARIOS: Record<string, (context: BenchContext) => Promise<FigureSeries[]>> = {
  memory: runMemory,
  fanout: runFanOut,
  ingest: runIngest,
  rollout: runRollout,
};

const USAGE = `usage: npm run bench -- [--quick] [--json] [--only NAMES] [--cpu-prof DIR]
  --quick         smaller fleets and one repeat: a smoke run of about 3 minutes
  --json          print every figure as JSON on the last line of the output
  --only NAMES    comma-separated scenarios to run: ${Object.keys(SCENARIOS).join(', ')}
  --cpu-prof DIR  write V8 CPU profiles of the backend replicas into DIR, one per measured window
  --heap-snapshots DIR
                  write V8 heap snapshots of the backend replicas at every memory step into DIR`;

/** First line a program prints for `args`; some print their version with a non-zero exit code. */
function versionOf(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error) return 'not installed';
  return `${result.stdout}${result.stderr}`.split('\n')[0]?.trim() ?? '';
}

function machine(): Record<string, string | number> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: versionOf('uname', ['-r']),
    node: process.version,
    redis: versionOf('redis-server', ['--version']),
    mosquitto: versionOf('mosquitto', ['-h']),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      only: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'heap-snapshots': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const names = values.only ? values.only.split(',').map((n) => n.trim()) : Object.keys(SCENARIOS);
  const unknown = names.filter((n) => !(n in SCENARIOS));
  if (unknown.length > 0) {
    process.stderr.write(`unknown scenario ${unknown.join(', ')}\n${USAGE}\n`);
    return 2;
  }

  const plan = makePlan(values.quick);
  const logDir = await mkdtemp(join(tmpdir(), 'fleet-bench-'));
  const profileDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : null;
  if (profileDir) await mkdir(profileDir, { recursive: true });
  const heapDir = values['heap-snapshots'] ? resolve(values['heap-snapshots']) : null;
  if (heapDir) await mkdir(heapDir, { recursive: true });
  const started = Date.now();
  const progress = (message: string) => {
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
  };
  progress(`${plan.mode} run; logs in ${logDir}${profileDir ? `, profiles in ${profileDir}` : ''}`);
  registerProcess(process.pid);

  const stack = await startStack(plan, { logDir, profileDir, heapDir, progress });
  const figures: FigureReport[] = [];
  let failed = false;
  try {
    for (const name of names) {
      try {
        for (const series of await (SCENARIOS[name] as (c: BenchContext) => Promise<FigureSeries[]>)(stack.context)) {
          const draft = reportFigure(series, null);
          figures.push(reportFigure(series, targetFor(draft)));
        }
      } catch (err) {
        failed = true;
        progress(`scenario ${name} failed: ${(err as Error).stack ?? String(err)}`);
      }
    }
  } finally {
    await stack.stop();
  }

  process.stdout.write(`\n${formatTable(figures)}\n`);
  progress(`finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (values.json) {
    const result = { mode: plan.mode, repeats: plan.repeats, slowRepeats: plan.slowRepeats, machine: machine(), failed, figures };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
