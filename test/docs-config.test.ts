import { readFileSync } from 'node:fs';
import test from 'ava';
import { loadConfig } from '../runtime/config.ts';
import { generateSigningKeys } from '../security/patch-signing.ts';

// docs/configuration.md must list exactly the environment variables that the code reads, with the defaults
// that loadConfig applies. These tests read the variable table of that page and compare it with
// runtime/config.ts, both its source text and what loadConfig does.

const ROOT = new URL('../', import.meta.url);
const DOC_PATH = 'docs/configuration.md';
const CONFIG_PATH = 'runtime/config.ts';

/**
 * The smallest environment loadConfig accepts: the three S3 settings without a default, the device token
 * secret, and the signing public key that the default FLEET_REQUIRE_SIGNATURES=true requires.
 */
const MINIMAL_ENV = {
  S3_ENDPOINT: 'http://127.0.0.1:9000',
  S3_ACCESS_KEY: 'access',
  S3_SECRET_KEY: 'secret',
  FLEET_DEVICE_TOKEN_SECRET: 'x'.repeat(32),
  FLEET_SIGNING_PUBLIC_KEY: generateSigningKeys().publicKey,
};

/** Documented variables that loadConfig does not read, each with the file that reads it from process.env. */
const OTHER_READERS: Record<string, string> = {
  LOG_FORMAT: 'runtime/logger.ts',
  FLEET_DEVICE_URL: 'cli/main.ts',
  FLEET_SIGNING_KEY_FILE: 'cli/patch.ts',
  FLEET_DEVICE_TOKEN: 'cli/simulate.ts',
};

/**
 * A read in config.ts: a helper call such as `integer(env, 'FLEET_PORT', 8080, 0, 65535)` (group 1 is the
 * name) or a direct property read such as `env.FLEET_ADMIN_TOKEN` (group 2 is the name).
 */
const CONFIG_READ = /\b(?:text|integer|url|choice|flag)\(\s*env,\s*'([A-Z][A-Z0-9_]*)'|\benv\.([A-Z][A-Z0-9_]*)\b/g;

/**
 * A helper call with a literal default: a quoted string, a number like `10_000`, or `true` or `false`.
 * Group 1 is the name and group 2 the default.
 */
const LITERAL_DEFAULT =
  /\b(?:text|integer|url|choice|flag)\(\s*env,\s*'([A-Z][A-Z0-9_]*)',\s*('[^']*'|\d[\d_]*|true|false)\s*[,)]/g;

interface DocumentedVariable {
  name: string;
  /** The Default cell as written, such as "`8080`" or "none, required". */
  defaultCell: string;
}

function readSource(path: string): string {
  return readFileSync(new URL(path, ROOT), 'utf8');
}

/** Splits a table row on `|`, except inside code spans. */
function splitRow(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let inCode = false;
  const body = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  for (const char of body) {
    if (char === '`') inCode = !inCode;
    if (char === '|' && !inCode) {
      cells.push(cell.trim());
      cell = '';
    } else {
      cell += char;
    }
  }
  cells.push(cell.trim());
  return cells;
}

/** Returns the text of a cell that is exactly one code span, such as "`fleet:`" → "fleet:", or null. */
function unwrapCodeSpan(cell: string): string | null {
  return /^`([^`]+)`$/.exec(cell.trim())?.[1] ?? null;
}

/** Parses the rows of the first table whose header has a `Variable` and a `Default` column. */
function parseVariableTable(markdown: string): DocumentedVariable[] {
  const lines = markdown.split(/\r?\n/);
  const headerIndex = lines.findIndex((line) => {
    const cells = line.trim().startsWith('|') ? splitRow(line) : [];
    return cells.includes('Variable') && cells.includes('Default');
  });
  if (headerIndex < 0) throw new Error(`${DOC_PATH} has no table with the columns Variable and Default`);

  const header = splitRow(lines[headerIndex] as string);
  const nameColumn = header.indexOf('Variable');
  const defaultColumn = header.indexOf('Default');
  const rows: DocumentedVariable[] = [];
  for (const line of lines.slice(headerIndex + 2)) {
    if (!line.trim().startsWith('|')) break;
    const cells = splitRow(line);
    const nameCell = cells[nameColumn] ?? '';
    const name = unwrapCodeSpan(nameCell);
    if (name === null) {
      throw new Error(`invalid Variable cell ${JSON.stringify(nameCell)}: write the name as one code span`);
    }
    rows.push({ name, defaultCell: cells[defaultColumn] ?? '' });
  }
  return rows;
}

/** Runs loadConfig on the minimal environment and records every variable it looks up. */
function recordLoadConfigReads(): Set<string> {
  const read = new Set<string>();
  const env = new Proxy<Record<string, string | undefined>>(
    { ...MINIMAL_ENV },
    {
      get(target, property) {
        if (typeof property === 'string') read.add(property);
        return Reflect.get(target, property) as string | undefined;
      },
    },
  );
  loadConfig(env);
  return read;
}

const configSource = readSource(CONFIG_PATH);
const configVariables = new Set([...configSource.matchAll(CONFIG_READ)].map((match) => (match[1] ?? match[2]) as string));
const documented = parseVariableTable(readSource(DOC_PATH));
const documentedNames = new Set(documented.map((row) => row.name));

test('config.ts regex finds what loadConfig reads', (t) => {
  const read = recordLoadConfigReads();
  for (const name of read) {
    t.true(configVariables.has(name), `loadConfig reads ${name}, but CONFIG_READ does not find it in ${CONFIG_PATH}`);
  }
  for (const name of configVariables) {
    t.true(read.has(name), `CONFIG_READ finds ${name} in ${CONFIG_PATH}, but loadConfig does not read it`);
  }
});

test('every config variable is documented', (t) => {
  for (const name of configVariables) {
    t.true(documentedNames.has(name), `${CONFIG_PATH} reads ${name}, which the table in ${DOC_PATH} lacks`);
  }
});

test('every documented variable is read', (t) => {
  const seen = new Set<string>();
  for (const { name } of documented) {
    t.false(seen.has(name), `${DOC_PATH} lists ${name} twice`);
    seen.add(name);
    if (configVariables.has(name)) continue;

    const reader = OTHER_READERS[name];
    t.truthy(reader, `${DOC_PATH} lists ${name}, which neither ${CONFIG_PATH} nor OTHER_READERS reads`);
    if (reader === undefined) continue;
    const reads = new RegExp(`process\\.env\\.${name}\\b|process\\.env\\[['"]${name}['"]\\]`);
    t.regex(readSource(reader), reads, `${DOC_PATH} lists ${name}, but ${reader} no longer reads it`);
  }
});

test('other readers are documented', (t) => {
  for (const [name, reader] of Object.entries(OTHER_READERS)) {
    t.true(documentedNames.has(name), `${reader} reads ${name}, which the table in ${DOC_PATH} lacks`);
  }
});

test('literal defaults in config.ts are documented', (t) => {
  const literals = [...configSource.matchAll(LITERAL_DEFAULT)];
  t.true(literals.length > 0, `LITERAL_DEFAULT finds no default in ${CONFIG_PATH}`);
  for (const [, name, literal] of literals) {
    const quoted = /^'(.*)'$/.exec(literal as string)?.[1];
    const expected = quoted ?? (literal as string).replaceAll('_', '');
    const row = documented.find((entry) => entry.name === name);
    t.truthy(row, `${CONFIG_PATH} reads ${name}, which the table in ${DOC_PATH} lacks`);
    if (row === undefined) continue;
    const documentedDefault = unwrapCodeSpan(row.defaultCell);
    t.is(documentedDefault, expected, `default of ${name} in ${DOC_PATH} differs from ${CONFIG_PATH}`);
  }
});

// Setting a variable to its documented default must leave the configuration as it is without the variable.
// Only Default cells that are one code span are checked, because the others describe a computed default.
test('documented defaults match loadConfig', (t) => {
  const defaults = loadConfig(MINIMAL_ENV);
  for (const { name, defaultCell } of documented) {
    const value = unwrapCodeSpan(defaultCell);
    if (value === null || !configVariables.has(name)) continue;
    let config;
    try {
      config = loadConfig({ ...MINIMAL_ENV, [name]: value });
    } catch (err) {
      t.fail(`${name}=${value}, the default in ${DOC_PATH}, is rejected: ${(err as Error).message}`);
      continue;
    }
    t.deepEqual(config, defaults, `${name}=${value} changes the configuration, so it is not the default`);
  }
});
