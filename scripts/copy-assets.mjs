#!/usr/bin/env node
// Copies the files that `tsc` does not emit into dist/. storage/scripts.ts reads its Lua scripts at run time
// from storage/scripts/ next to the compiled storage/scripts.js, so dist/storage/scripts/ must contain them.
// Run from the repository root, after `tsc -p tsconfig.build.json`.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const ASSETS = [
  { from: 'storage/scripts', to: 'dist/storage/scripts', extension: '.lua' },
  { from: 'runtime/dashboard', to: 'dist/runtime/dashboard', extension: '.html' },
];

for (const { from, to, extension } of ASSETS) {
  const files = readdirSync(from).filter((name) => name.endsWith(extension));
  if (files.length === 0) {
    process.stderr.write(`copy-assets: no ${extension} files found in ${from}; run this script from the repository root\n`);
    process.exit(1);
  }
  mkdirSync(to, { recursive: true });
  for (const name of files) copyFileSync(join(from, name), join(to, name));
  process.stdout.write(`copy-assets: copied ${files.length} ${extension} files from ${from} to ${to}\n`);
}
