import { readFileSync } from 'node:fs';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import test from 'ava';
import YAML from 'yaml';
import { ASYNCAPI_PATH, MESSAGE_EXAMPLES, buildAsyncApi, renderAsyncApiYaml } from '../protocol/asyncapi.ts';
import { CLOSE_CODES, STANDARD_CLOSE_CODES } from '../protocol/close-codes.ts';
import { DEVICE_ERRORS } from '../protocol/errors.ts';
import { DEVICE_MESSAGES, FAILURE_REASONS, SERVER_MESSAGES } from '../protocol/messages.ts';
import { parseDeviceMessage } from '../protocol/validate.ts';

// docs/protocol.md must agree with the code: these tests find each table under its heading and compare it
// with the catalogue it documents, and validate every JSON example against the schemas.

const DOC_PATH = new URL('../docs/protocol.md', import.meta.url);
const DEVICE_HEADING = 'Device → server messages';
const SERVER_HEADING = 'Server → device messages';
const ERROR_HEADING = 'Error codes';
const CLOSE_HEADING = 'Close codes';

interface Section {
  level: number;
  title: string;
  /** Lines after the heading, up to the next heading of the same or a higher level. */
  lines: string[];
}

interface Table {
  header: string[];
  rows: string[][];
}

const FENCE = /^\s*(```|~~~)/;
/** The row under a table's header, such as `| --- | :---: |`. */
const SEPARATOR_ROW = /^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$/;

/** Splits markdown into one section per heading. Headings inside fenced code blocks do not count. */
function parseSections(markdown: string): Section[] {
  const lines = markdown.split(/\r?\n/);
  const headings: { index: number; level: number; title: string }[] = [];
  let inFence = false;
  lines.forEach((line, index) => {
    if (FENCE.test(line)) inFence = !inFence;
    const match = inFence ? null : /^(#{1,6})\s+(.+?)\s*#*\s*$/.exec(line);
    if (match?.[1] && match[2]) headings.push({ index, level: match[1].length, title: match[2] });
  });

  return headings.map((heading, i) => {
    const end = headings.slice(i + 1).find((next) => next.level <= heading.level)?.index ?? lines.length;
    return { level: heading.level, title: heading.title, lines: lines.slice(heading.index + 1, end) };
  });
}

/** Unwraps a heading or table cell that is one code span or one quoted string: "`hello`" → "hello". */
function plainText(text: string): string {
  const trimmed = text.trim();
  const codeSpan = /^`([^`]*)`$/.exec(trimmed)?.[1];
  return (codeSpan ?? trimmed).replace(/^"(.*)"$/, '$1');
}

function findSection(sections: Section[], title: string, level?: number): Section {
  const found = sections.filter((s) => plainText(s.title) === title && (level === undefined || s.level === level));
  if (found.length !== 1) {
    throw new Error(`expected one heading "${title}" in docs/protocol.md, found ${found.length}`);
  }
  return found[0] as Section;
}

/** Returns the direct subsections of `parent`, which must be one of `all`. */
function childSections(all: Section[], parent: Section): Section[] {
  const start = all.indexOf(parent);
  const children: Section[] = [];
  for (const section of all.slice(start + 1)) {
    if (section.level <= parent.level) break;
    if (section.level === parent.level + 1) children.push(section);
  }
  return children;
}

/** Splits a table row on `|`, except on an escaped `\|` and inside code spans. */
function splitRow(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let inCode = false;
  const body = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  for (let i = 0; i < body.length; i++) {
    const char = body[i] as string;
    if (char === '\\' && body[i + 1] === '|') {
      cell += '|';
      i++;
    } else if (char === '`') {
      inCode = !inCode;
      cell += char;
    } else if (char === '|' && !inCode) {
      cells.push(cell.trim());
      cell = '';
    } else {
      cell += char;
    }
  }
  cells.push(cell.trim());
  return cells;
}

/** Parses every table in `lines` that lies outside fenced code blocks. */
function parseTables(lines: string[]): Table[] {
  const tables: Table[] = [];
  let inFence = false;
  let block: string[] = [];
  const flush = () => {
    const separator = block[1];
    if (block.length >= 2 && separator !== undefined && SEPARATOR_ROW.test(separator.trim())) {
      tables.push({
        header: splitRow(block[0] as string).map((cell) => plainText(cell).toLowerCase()),
        rows: block.slice(2).map(splitRow),
      });
    }
    block = [];
  };
  for (const line of lines) {
    if (FENCE.test(line)) inFence = !inFence;
    if (!inFence && line.trim().startsWith('|')) block.push(line);
    else flush();
  }
  flush();
  return tables;
}

/** Finds the first table in the section whose header has all of `columns`, in lower case. */
function tableWithColumns(section: Section, columns: string[]): Table {
  const table = parseTables(section.lines).find((t) => columns.every((c) => t.header.includes(c)));
  if (!table) throw new Error(`no table with columns ${columns.join(', ')} under "${section.title}"`);
  return table;
}

function cellOf(table: Table, row: string[], column: string): string {
  const index = table.header.indexOf(column);
  const cell = row[index];
  if (index < 0 || cell === undefined) throw new Error(`row ${JSON.stringify(row)} has no "${column}" cell`);
  return cell;
}

/** Reads a yes/no cell as a boolean. */
function flagOf(table: Table, row: string[], column: string): boolean {
  const value = plainText(cellOf(table, row, column)).toLowerCase();
  if (value !== 'yes' && value !== 'no') {
    throw new Error(`expected yes or no in column "${column}" of row ${JSON.stringify(row)}, got "${value}"`);
  }
  return value === 'yes';
}

/** Collects the contents of every fenced block tagged `json` in `lines`. */
function jsonBlocks(lines: string[]): string[] {
  const blocks: string[] = [];
  let current: string[] | null = null;
  for (const line of lines) {
    if (current === null && /^\s*```json\s*$/.test(line)) {
      current = [];
    } else if (current !== null && /^\s*```\s*$/.test(line)) {
      blocks.push(current.join('\n'));
      current = null;
    } else if (current !== null) {
      current.push(line);
    }
  }
  return blocks;
}

const sections = parseSections(readFileSync(DOC_PATH, 'utf8'));
const serverCheckers = new Map(
  Object.entries(SERVER_MESSAGES).map(([type, schema]) => [type, TypeCompiler.Compile(schema as TSchema)]),
);

test('markdown parser splits rows with code spans and escapes', (t) => {
  t.deepEqual(splitRow('| `a|b` | c \\| d | e |'), ['`a|b`', 'c | d', 'e']);

  const parsed = parseSections('# Top\n\n```\n# not a heading\n```\n\n## Child\n\n| A | B |\n|---|---|\n| 1 | 2 |\n');
  t.deepEqual(
    parsed.map((s) => s.title),
    ['Top', 'Child'],
  );
  t.deepEqual(parseTables(parsed[1]?.lines ?? []), [{ header: ['a', 'b'], rows: [['1', '2']] }]);
});

test('error table lists every error code', (t) => {
  const table = tableWithColumns(findSection(sections, ERROR_HEADING, 2), ['code', 'retryable', 'meaning']);
  const documented = new Map<string, boolean>();
  for (const row of table.rows) {
    const code = plainText(cellOf(table, row, 'code'));
    t.false(documented.has(code), `error code ${code} is listed twice`);
    documented.set(code, flagOf(table, row, 'retryable'));
  }

  for (const [code, error] of Object.entries(DEVICE_ERRORS)) {
    t.true(documented.has(code), `error code ${code} is missing from the doc's error table`);
    t.is(documented.get(code), error.retryable, `retryable flag of ${code} differs from protocol/errors.ts`);
  }
  for (const code of documented.keys()) {
    t.true(Object.hasOwn(DEVICE_ERRORS, code), `the doc lists error code ${code}, which protocol/errors.ts lacks`);
  }
});

test('close code table lists every close code', (t) => {
  const table = tableWithColumns(findSection(sections, CLOSE_HEADING, 2), ['code', 'name', 'reconnect?', 'meaning']);
  const documented = new Map<number, { name: string; reconnect: boolean }>();
  for (const row of table.rows) {
    const code = Number(plainText(cellOf(table, row, 'code')));
    t.true(Number.isInteger(code), `close code cell of row ${JSON.stringify(row)} is not a number`);
    t.false(documented.has(code), `close code ${code} is listed twice`);
    documented.set(code, { name: plainText(cellOf(table, row, 'name')), reconnect: flagOf(table, row, 'reconnect?') });
  }

  for (const [name, close] of Object.entries(CLOSE_CODES)) {
    const row = documented.get(close.code);
    t.truthy(row, `close code ${close.code} (${name}) is missing from the doc's close code table`);
    t.is(row?.name, name, `close code ${close.code} has another name in the doc`);
    t.is(row?.reconnect, close.reconnect, `reconnect flag of ${name} (${close.code}) differs from close-codes.ts`);
  }
  for (const code of Object.keys(STANDARD_CLOSE_CODES)) {
    t.true(documented.has(Number(code)), `standard close code ${code} is missing from the doc's close code table`);
  }

  const known = new Set<number>([
    ...Object.values(CLOSE_CODES).map((close) => close.code),
    ...Object.keys(STANDARD_CLOSE_CODES).map(Number),
  ]);
  for (const code of documented.keys()) {
    t.true(known.has(code), `the doc lists close code ${code}, which protocol/close-codes.ts lacks`);
  }
});

const directions = [
  { heading: DEVICE_HEADING, schemas: DEVICE_MESSAGES as Record<string, TSchema> },
  { heading: SERVER_HEADING, schemas: SERVER_MESSAGES as Record<string, TSchema> },
];

for (const { heading, schemas } of directions) {
  test(`every message has a section: ${heading}`, (t) => {
    const parent = findSection(sections, heading, 2);
    const titles = childSections(sections, parent).map((s) => plainText(s.title));
    for (const type of Object.keys(schemas)) {
      t.true(titles.includes(type), `no "### \`${type}\`" section under "${heading}"`);
    }
    for (const title of titles) {
      t.true(Object.hasOwn(schemas, title), `section "${title}" under "${heading}" names no message type`);
    }
  });

  test(`field tables match schemas: ${heading}`, (t) => {
    const parent = findSection(sections, heading, 2);
    for (const section of childSections(sections, parent)) {
      const type = plainText(section.title);
      const schema = schemas[type];
      if (!schema) continue;
      const table = tableWithColumns(section, ['field', 'type', 'required']);
      const properties = Object.keys(schema.properties as Record<string, unknown>);
      const required = new Set<string>(schema.required as string[]);
      const fields = table.rows.map((row) => plainText(cellOf(table, row, 'field')));

      t.deepEqual([...fields].sort(), [...properties].sort(), `fields of ${type} differ from its schema`);
      for (const row of table.rows) {
        const field = plainText(cellOf(table, row, 'field'));
        t.is(flagOf(table, row, 'required'), required.has(field), `required flag of ${type}.${field} is wrong`);
      }
    }
  });
}

test('failure reason table matches FAILURE_REASONS', (t) => {
  const section = findSection(sections, 'result', 3);
  const table = tableWithColumns(section, ['reason', 'use it when']);
  const reasons = table.rows.map((row) => plainText(cellOf(table, row, 'reason')));
  t.deepEqual([...reasons].sort(), [...FAILURE_REASONS].sort());
});

test('device message examples pass parseDeviceMessage', (t) => {
  const parent = findSection(sections, DEVICE_HEADING, 2);
  for (const section of childSections(sections, parent)) {
    const type = plainText(section.title);
    const examples = jsonBlocks(section.lines);
    t.true(examples.length > 0, `section ${type} has no JSON example`);
    for (const example of examples) {
      const parsed = parseDeviceMessage(example);
      t.true(parsed.ok, `example of ${type} is rejected: ${JSON.stringify(parsed)}\n${example}`);
      const actualType: string | undefined = parsed.ok ? parsed.message.type : undefined;
      if (parsed.ok) t.is(actualType, type, `example under ${type} has type ${actualType}`);
    }
  }
});

test('server message examples match schemas', (t) => {
  const parent = findSection(sections, SERVER_HEADING, 2);
  for (const section of childSections(sections, parent)) {
    const type = plainText(section.title);
    const checker = serverCheckers.get(type);
    const examples = jsonBlocks(section.lines);
    t.true(examples.length > 0, `section ${type} has no JSON example`);
    for (const example of examples) {
      const value: unknown = JSON.parse(example);
      const error = checker?.Errors(value).First();
      t.is(error, undefined, `example of ${type} is invalid at ${error?.path}: ${error?.message}\n${example}`);
    }
  }
});

test('asyncapi examples match schemas', (t) => {
  for (const [type, example] of Object.entries(MESSAGE_EXAMPLES)) {
    if (Object.hasOwn(DEVICE_MESSAGES, type)) {
      const parsed = parseDeviceMessage(JSON.stringify(example));
      t.true(parsed.ok, `asyncapi example of ${type} is rejected: ${JSON.stringify(parsed)}`);
    } else {
      const error = serverCheckers.get(type)?.Errors(example).First();
      t.is(error, undefined, `asyncapi example of ${type} is invalid at ${error?.path}: ${error?.message}`);
    }
  }
});

test('asyncapi.yaml is up to date', (t) => {
  const committed = readFileSync(ASYNCAPI_PATH, 'utf8');
  t.deepEqual(YAML.parse(committed), buildAsyncApi(), 'docs/asyncapi.yaml is stale: run `npm run asyncapi`');
  t.is(committed, renderAsyncApiYaml(), 'docs/asyncapi.yaml is formatted differently: run `npm run asyncapi`');
});

test('asyncapi document covers every message', (t) => {
  const document = buildAsyncApi() as {
    channels: { device: { address: string; messages: Record<string, unknown> } };
    operations: Record<string, { action: string; messages: { $ref: string }[] }>;
    components: { messages: Record<string, { payload: unknown }> };
  };
  t.is(document.channels.device.address, '/device');

  const sentByDevice = Object.values(document.operations)
    .filter((operation) => operation.action === 'send')
    .flatMap((operation) => operation.messages.map((ref) => ref.$ref.split('/').pop()));
  const receivedByDevice = Object.values(document.operations)
    .filter((operation) => operation.action === 'receive')
    .flatMap((operation) => operation.messages.map((ref) => ref.$ref.split('/').pop()));
  t.deepEqual(sentByDevice.sort(), Object.keys(DEVICE_MESSAGES).sort());
  t.deepEqual(receivedByDevice.sort(), Object.keys(SERVER_MESSAGES).sort());

  for (const [type, schema] of Object.entries({ ...DEVICE_MESSAGES, ...SERVER_MESSAGES })) {
    t.deepEqual(document.components.messages[type]?.payload, JSON.parse(JSON.stringify(schema)), `payload of ${type}`);
  }
});
