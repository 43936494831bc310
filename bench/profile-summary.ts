/**
 * Summarizes V8 CPU profiles (.cpuprofile files, as written by `npm run bench -- --cpu-prof DIR`): the
 * functions and the packages or project folders with the most self time.
 * Usage: npx tsx bench/profile-summary.ts FILE... [--top N]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Returns where a script comes from: an npm package, a project folder, Node itself or V8's own work. */
function origin(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const packageMatch = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (packageMatch) return packageMatch[1] as string;
  if (url.startsWith('node:')) return 'node:internal';
  // The harness runs a JavaScript build of the backend from bench/.build/, so look past that folder.
  const projectMatch = /\/(runtime|handlers|storage|protocol|security|local|cli|simulator|bench)\//.exec(url.replace('/bench/.build/', '/'));
  return projectMatch ? `${projectMatch[1]}/` : url;
}

function summarize(file: string, top: number): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const total = profile.endTime - profile.startTime;
  const byFunction = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|camera-fleet|main)\//, '')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const from = origin(frame.url, frame.functionName);
    byOrigin.set(from, (byOrigin.get(from) ?? 0) + us);
  }
  const busy = total - (byOrigin.get('(idle)') ?? 0);
  const rows = (map: Map<string, number>) =>
    [...map.entries()]
      .filter(([key]) => key !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key, us]) => `  ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}`)
      .join('\n');
  return [
    `${file}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(1)} s busy (percentages are of busy time)`,
    'self time by origin:',
    rows(byOrigin),
    'self time by function:',
    rows(byFunction),
  ].join('\n');
}

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
if (positionals.length === 0) {
  process.stderr.write('usage: npx tsx bench/profile-summary.ts FILE.cpuprofile... [--top N]\n');
  process.exit(2);
}
for (const file of positionals) process.stdout.write(`${summarize(file, Number(values.top))}\n\n`);
