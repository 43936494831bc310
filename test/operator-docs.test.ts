import { readFileSync } from 'node:fs';
import test from 'ava';
import { EXIT } from '../cli/errors.ts';
import { API_ERRORS } from '../handlers/operator/errors.ts';
import { ROUTES } from '../handlers/operator/routes.ts';
import { EXTRA_ROUTES } from '../runtime/api/openapi.ts';

// docs/operators.md must agree with the code: its error code table with API_ERRORS, its exit code table with
// EXIT, and its route sections with the route table, each with a curl example.

const markdown = readFileSync(new URL('../docs/operators.md', import.meta.url), 'utf8');

const FENCE = /^\s*(```|~~~)/;
const SEPARATOR_ROW = /^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$/;

/**
 * Returns the lines under the heading with this text, up to the next heading of the same or a higher level,
 * or null when there is no such heading.
 */
function section(title: string): string[] | null {
  const lines = markdown.split(/\r?\n/);
  let inFence = false;
  let start = -1;
  let level = 0;
  for (const [index, line] of lines.entries()) {
    if (FENCE.test(line)) inFence = !inFence;
    const heading = inFence ? null : /^(#{1,6})\s+(.+?)\s*$/.exec(line);
    if (!heading?.[1] || !heading[2]) continue;
    if (start >= 0 && heading[1].length <= level) return lines.slice(start, index);
    if (start < 0 && heading[2] === title) {
      start = index + 1;
      level = heading[1].length;
    }
  }
  return start < 0 ? null : lines.slice(start);
}

/** Returns the body rows of the first table in `lines`, each cell trimmed and unwrapped from one code span. */
function tableRows(lines: string[] | null): string[][] {
  if (lines === null) throw new Error('docs/operators.md lacks the section of this table');
  const rows = lines.filter((line) => line.trim().startsWith('|'));
  return rows
    .slice(1)
    .filter((row) => !SEPARATOR_ROW.test(row.trim()))
    .map((row) =>
      row
        .trim()
        .replace(/^\||\|$/g, '')
        .split('|')
        .map((cell) => cell.trim().replace(/^`([^`]*)`$/, '$1')),
    );
}

test('error code table matches API_ERRORS', (t) => {
  const rows = tableRows(section('Error codes'));
  const documented = Object.fromEntries(rows.map(([code, status]) => [code, Number(status)]));
  const expected = Object.fromEntries(Object.entries(API_ERRORS).map(([code, error]) => [code, error.status]));
  t.deepEqual(documented, expected, 'the "Error codes" table of docs/operators.md lists each code of API_ERRORS with its status');
  t.is(rows.length, Object.keys(API_ERRORS).length, 'each code appears once');
  for (const row of rows) t.true((row[2] ?? '').length > 0, `${row[0]} has a meaning`);
});

test('exit code table matches EXIT', (t) => {
  const rows = tableRows(section('Exit codes'));
  const documented = Object.fromEntries(rows.map(([code, name]) => [name, Number(code)]));
  t.deepEqual(documented, { ...EXIT });
});

test('every route has a section with curl', (t) => {
  const routes = [...ROUTES, ...EXTRA_ROUTES].map((route) => `${route.method.toUpperCase()} ${route.path}`);
  for (const route of routes) {
    const lines = section(`\`${route}\``);
    t.not(lines, null, `docs/operators.md has no "### \`${route}\`" section; add one with a curl example`);
    t.true(
      lines?.some((line) => line.trimStart().startsWith('curl ')) ?? false,
      `the section of ${route} in docs/operators.md has no curl example`,
    );
  }
});
