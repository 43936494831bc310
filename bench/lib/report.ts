import type { FigureReport } from './figures.ts';
import type { Summary } from './stats.ts';

function number(value: number): string {
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value).toLocaleString('en-US');
  if (magnitude >= 100) return value.toFixed(0);
  if (magnitude >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function range(summary: Summary): string {
  return summary.n > 1 ? `${number(summary.median)} (${number(summary.min)}–${number(summary.max)})` : number(summary.median);
}

/** Formats a plain-text table with one row per figure and yardstick, so a figure with two yardsticks takes two rows. */
export function formatTable(figures: FigureReport[]): string {
  const header = ['figure', 'devices', 'replicas', 'value (median, min–max)', 'yardstick', 'yardstick value', 'ratio', 'target'];
  const rows: string[][] = [];
  for (const figure of figures) {
    figure.yardsticks.forEach((yardstick, index) => {
      const first = index === 0;
      rows.push([
        first ? figure.id : '',
        first ? String(figure.devices ?? '') : '',
        first ? String(figure.replicas ?? '') : '',
        first ? `${range(figure.value)} ${figure.unit}` : '',
        yardstick.name,
        `${range(yardstick.value)} ${figure.unit}`,
        `${range(yardstick.ratio)}×`,
        first && figure.target ? `${figure.target.met ? 'met' : 'NOT met'}: ${figure.target.text}` : '',
      ]);
    });
  }
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] as string).length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column] as number)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
