#!/usr/bin/env node
// Runs the whole check: type-check, lint, then the ava suite, and ends with one line
// `N passed, N failed` counted from ava's own summary, so CI and people read the same result.
// Arguments after `--` go to ava (for example a test file).
import { spawn } from 'node:child_process';

function run(command, args, { capture = false } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', capture ? 'pipe' : 'inherit', capture ? 'pipe' : 'inherit'] });
    let output = '';
    if (capture) {
      for (const stream of [child.stdout, child.stderr]) {
        stream.on('data', (chunk) => {
          output += chunk;
          (stream === child.stdout ? process.stdout : process.stderr).write(chunk);
        });
      }
    }
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

function count(output, pattern) {
  const match = output.match(pattern);
  return match ? Number(match[1]) : 0;
}

const avaArgs = process.argv.slice(2);
for (const [step, command, args] of [
  ['type-check', 'npx', ['tsc', '--noEmit']],
  ['lint', 'npx', ['eslint', '.']],
]) {
  process.stdout.write(`\n> ${step}\n`);
  const { code } = await run(command, args);
  if (code !== 0) {
    process.stdout.write(`\n${step} failed\n0 passed, 1 failed\n`);
    process.exit(1);
  }
}

process.stdout.write('\n> ava\n');
const { code, output } = await run('npx', ['ava', ...avaArgs], { capture: true });
// ava prints "N tests passed" only when nothing failed, so passed tests are also counted by their ✔ lines.
const ticks = output.split('\n').filter((line) => /^\s*✔/.test(line)).length;
const passed = Math.max(count(output, /(\d+) tests? passed/), ticks);
let failed =
  count(output, /(\d+) tests? failed/) +
  count(output, /(\d+) uncaught exceptions?/) +
  count(output, /(\d+) unhandled rejections?/);
if (code !== 0 && failed === 0) failed = 1;
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(code === 0 && failed === 0 ? 0 : 1);
