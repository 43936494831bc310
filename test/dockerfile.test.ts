import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import ts from 'typescript';
import { loadConfig } from '../runtime/config.ts';

// The test suite has no container engine, so these tests check the Dockerfile by reading it: the base
// images, the stages, the user, and that the entry point is the file `npm run build` emits.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const DOCKERIGNORE = readFileSync(join(ROOT, '.dockerignore'), 'utf8');

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions. Continued lines are joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const lines = text.split('\n').filter((line) => !/^\s*#/.test(line));
  const joined = lines.join('\n').replace(/\\\n/g, ' ');
  const stages: Stage[] = [];
  for (const line of joined.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const keyword = (match[1] as string).toUpperCase();
    const args = (match[2] as string).trim();
    if (keyword === 'FROM') {
      const [image, as, name] = args.split(/\s+/);
      stages.push({ image: image as string, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile: ${keyword} before the first FROM`);
    stage.instructions.push({ keyword, args });
  }
  return stages;
}

function argsOf(stage: Stage, keyword: string): string[] {
  return stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
}

/** Sources of the COPY instructions that read the build context (not --from another stage). */
function contextSources(stage: Stage): string[] {
  return argsOf(stage, 'COPY')
    .filter((args) => !args.startsWith('--from'))
    .flatMap((args) => args.split(/\s+/).filter((word) => !word.startsWith('--')).slice(0, -1));
}

/** Parses the JSON array of the last exec-form instruction, such as ENTRYPOINT ["node", "x.js"]. */
function execForm(stage: Stage, keyword: string): string[] {
  const [args] = argsOf(stage, keyword).slice(-1);
  if (args === undefined) throw new Error(`the final stage has no ${keyword}`);
  return JSON.parse(args) as string[];
}

/** tsconfig.build.json as `tsc -p` reads it, with `extends` resolved. */
function buildConfig(): ts.ParsedCommandLine {
  const host: ts.ParseConfigFileHost = {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    },
  };
  const parsed = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.build.json'), {}, host);
  if (!parsed) throw new Error('failed to read tsconfig.build.json');
  return parsed;
}

const stages = parseDockerfile(DOCKERFILE);
const finalStage = stages.at(-1) as Stage;
const buildStage = stages.find((stage) => argsOf(stage, 'RUN').some((run) => run.includes('npm run build')));

test('base images are Node 20 on bookworm', (t) => {
  t.true(stages.length >= 2, 'expected a build stage and a runtime stage');
  const stageNames = new Set(stages.map((stage) => stage.name));
  for (const { image } of stages) {
    if (stageNames.has(image)) continue;
    t.regex(image, /^node:20(\.\d+){0,2}-bookworm(-slim)?$/, `${image}: the uWebSockets.js binaries need Node 20 and glibc >= 2.27`);
  }
});

test('build stage installs and builds', (t) => {
  t.truthy(buildStage, 'no stage runs `npm run build`');
  const runs = argsOf(buildStage as Stage, 'RUN');
  t.true(runs.some((run) => /\bnpm ci\b/.test(run)));

  // The build compiles the folders in tsconfig.build.json "include" and runs scripts/copy-assets.mjs.
  const copied = contextSources(buildStage as Stage);
  const included = buildConfig().raw.include as string[];
  for (const folder of [...included, 'scripts', 'package-lock.json', 'tsconfig.build.json']) {
    t.true(copied.includes(folder), `the build stage does not COPY ${folder}`);
  }
});

test('runtime stage has production dependencies only', (t) => {
  t.not(finalStage, buildStage);
  const installs = argsOf(finalStage, 'RUN').filter((run) => /\bnpm (ci|install)\b/.test(run));
  t.is(installs.length, 1);
  t.regex(installs[0] ?? '', /\bnpm ci\b.*--omit=dev/);
});

test('runtime stage runs as non-root', (t) => {
  const [user] = argsOf(finalStage, 'USER').slice(-1);
  t.truthy(user, 'the final stage sets no USER');
  t.false(['root', '0', '0:0', 'root:root'].includes(user ?? ''), `USER ${user} is root`);
});

test('entry point is the compiled CLI', (t) => {
  const entrypoint = execForm(finalStage, 'ENTRYPOINT');
  t.is(entrypoint[0], 'node');

  const config = buildConfig();
  const source = join(ROOT, 'cli/main.ts');
  t.true(config.fileNames.includes(source), 'tsconfig.build.json does not compile cli/main.ts');
  const [emitted] = ts.getOutputFileNames(config, source, false).filter((file) => file.endsWith('.js'));
  t.is(entrypoint[1], relative(ROOT, emitted ?? ''));

  const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.is(packageJson.bin.fleet, entrypoint[1]);

  const outDir = relative(ROOT, config.options.outDir ?? '');
  t.true(
    argsOf(finalStage, 'COPY').some((args) => args.startsWith(`--from=${buildStage?.name}`) && args.includes(`/${outDir} ./${outDir}`)),
    `the runtime stage does not copy ${outDir}/ from the build stage`,
  );
});

test('default command serves on the config port', (t) => {
  t.deepEqual(execForm(finalStage, 'CMD'), ['serve']);
  t.regex(readFileSync(join(ROOT, 'cli/main.ts'), 'utf8'), /\.command\('serve'\)/);
  const defaults = loadConfig({
    S3_ENDPOINT: 'http://minio:9000',
    S3_ACCESS_KEY: 'a',
    S3_SECRET_KEY: 'b',
    FLEET_DEVICE_TOKEN_SECRET: 'x'.repeat(32),
    FLEET_REQUIRE_SIGNATURES: 'false',
  });
  t.deepEqual(argsOf(finalStage, 'EXPOSE'), [`${defaults.port} ${defaults.apiPort}`]);
});

test('.dockerignore keeps local state out', (t) => {
  const patterns = DOCKERIGNORE.split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  for (const required of ['node_modules', '.git', 'dist', 'test-artifacts']) {
    t.true(patterns.includes(required), `.dockerignore does not exclude ${required}`);
  }
  for (const source of stages.flatMap(contextSources)) t.false(patterns.includes(source), `.dockerignore excludes ${source}, which the Dockerfile copies`);
});
