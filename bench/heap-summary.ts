/**
 * Compares two V8 heap snapshots (as written by `npm run bench -- --heap-snapshots DIR`) and prints, per
 * constructor or node type, how many objects and bytes the second holds more than the first, divided by
 * `--per N` (the devices added between the two), largest first. Self sizes only: an object's own bytes,
 * not what it keeps alive.
 * Usage: npx tsx bench/heap-summary.ts BEFORE.heapsnapshot AFTER.heapsnapshot --per 4000 [--top 30]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Objects and self bytes per class: the constructor name for objects, the node type otherwise. */
function totals(file: string): Map<string, { count: number; bytes: number }> {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const typeIndex = fields.indexOf('type');
  const nameIndex = fields.indexOf('name');
  const sizeIndex = fields.indexOf('self_size');
  const result = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i + typeIndex] as number] as string;
    const name = snapshot.strings[snapshot.nodes[i + nameIndex] as number] as string;
    const key = type === 'object' || type === 'closure' ? `${type} ${name}` : `(${type})`;
    const entry = result.get(key) ?? { count: 0, bytes: 0 };
    entry.count += 1;
    entry.bytes += snapshot.nodes[i + sizeIndex] as number;
    result.set(key, entry);
  }
  return result;
}

const { values, positionals } = parseArgs({
  options: { per: { type: 'string', default: '1' }, top: { type: 'string', default: '30' } },
  allowPositionals: true,
});
if (positionals.length !== 2) {
  process.stderr.write('usage: npx tsx bench/heap-summary.ts BEFORE.heapsnapshot AFTER.heapsnapshot --per N [--top N]\n');
  process.exit(2);
}
const per = Number(values.per);
const before = totals(positionals[0] as string);
const after = totals(positionals[1] as string);
const rows = [...after.entries()].map(([key, entry]) => {
  const old = before.get(key) ?? { count: 0, bytes: 0 };
  return { key, count: (entry.count - old.count) / per, bytes: (entry.bytes - old.bytes) / per };
});
rows.sort((a, b) => b.bytes - a.bytes);
const total = rows.reduce((sum, row) => sum + row.bytes, 0);
process.stdout.write(`heap growth per unit: ${total.toFixed(0)} bytes (self sizes, all classes)\n`);
for (const row of rows.slice(0, Number(values.top))) {
  process.stdout.write(`${row.bytes.toFixed(0).padStart(8)} B  ${row.count.toFixed(2).padStart(7)} objects  ${row.key}\n`);
}
