import { cpus } from 'node:os';
import { table } from '../cli/format.ts';
import type { ChaosEnvironment } from './environment.ts';
import type { Check } from './invariants.ts';
import type { Figures, Scenario } from './scenario.ts';
import { SCENARIOS } from './scenarios/index.ts';

/** How one scenario ended: the figures it measured and every check, failed or not. */
export interface ScenarioResult {
  name: string;
  passed: boolean;
  figures: Figures;
  checks: Check[];
  /** Folder with the replica logs, kept when the scenario failed. */
  logDir?: string;
  error?: string;
}

export interface ChaosOptions {
  /** Scenario names; all when empty. */
  scenarios: string[];
  devices: number;
  /** Writes a progress line; the CLI sends it to stderr so stdout stays for the table and the JSON. */
  progress: (message: string) => void;
}

/** The machine the run happened on, for docs/reliability.md. */
export function machineDescription(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}, ${process.platform}`;
}

/** Looks up scenarios by name; throws with the list of names when one is unknown. */
export function selectScenarios(names: string[]): Scenario[] {
  if (names.length === 0) return SCENARIOS;
  return names.map((name) => {
    const scenario = SCENARIOS.find((s) => s.name === name);
    if (!scenario) {
      throw new Error(`unknown scenario ${JSON.stringify(name)}; choose from ${SCENARIOS.map((s) => s.name).join(', ')}`);
    }
    return scenario;
  });
}

/**
 * Runs one scenario and turns an exception into a failed result, so one broken scenario does not hide the
 * others. The environment's work folder, with the replica logs, is deleted only when the scenario passed.
 */
export async function runScenario(scenario: Scenario, devices: number, progress: (message: string) => void): Promise<ScenarioResult> {
  let environment: ChaosEnvironment | null = null;
  let result: ScenarioResult;
  try {
    const outcome = await scenario.run({
      devices,
      progress: (message) => progress(`${scenario.name}: ${message}`),
      started: (env) => {
        environment = env;
      },
    });
    const passed = outcome.checks.length > 0 && outcome.checks.every((c) => c.ok);
    result = { name: scenario.name, passed, figures: outcome.figures, checks: outcome.checks };
  } catch (err) {
    result = { name: scenario.name, passed: false, figures: {}, checks: [], error: (err as Error).stack ?? String(err) };
  }
  const env = environment as ChaosEnvironment | null;
  if (env) {
    await env.stop();
    if (result.passed) await env.removeWorkDir();
    else result.logDir = env.workDir;
  }
  return result;
}

/** Runs the scenarios one after another. */
export async function runChaos(options: ChaosOptions): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const scenario of selectScenarios(options.scenarios)) {
    options.progress(`${scenario.name}: ${scenario.summary}`);
    const result = await runScenario(scenario, options.devices, options.progress);
    options.progress(`${scenario.name}: ${result.passed ? 'passed' : 'FAILED'}`);
    results.push(result);
  }
  return results;
}

/** The table `fleet chaos` prints: one row per scenario, then one line per failed check. */
export function formatResults(results: ScenarioResult[]): string {
  const rows = results.map((r) => [
    r.name,
    r.passed ? 'passed' : 'FAILED',
    Object.entries(r.figures)
      .map(([key, value]) => `${key}=${value}`)
      .join(' '),
  ]);
  const lines = [table(['scenario', 'result', 'figures'], rows)];
  for (const r of results.filter((x) => !x.passed)) {
    for (const c of r.checks.filter((x) => !x.ok)) lines.push(`${r.name}: ${c.name} failed: ${c.detail}`);
    if (r.error) lines.push(`${r.name}: error: ${r.error}`);
    if (r.logDir) lines.push(`${r.name}: replica logs kept in ${r.logDir}`);
  }
  return lines.join('\n');
}
