// Preloaded into each benchmarked backend replica by the harness through NODE_OPTIONS (--import), because
// the harness may not change the backend, and Node accepts neither --expose-gc nor --cpu-prof in
// NODE_OPTIONS. On SIGUSR2 it reads $BENCH_CONTROL_DIR/command-PID.json, runs the command and writes
// $BENCH_CONTROL_DIR/reply-PID.json with the same id:
//   { "command": "gc" }                  wakes the module loader thread, runs a full garbage collection and
//                                        replies with the physical size of V8's young generation, which
//                                        the collection empties but keeps
//   { "command": "profile-start" }       starts a V8 CPU profile, as --cpu-prof would
//   { "command": "profile-stop", "file" } stops it and writes the .cpuprofile to that file
//   { "command": "heap-snapshot", "file" } writes a V8 heap snapshot to that file
// Plain JavaScript because it loads before the TypeScript loader named on the backend's command line.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { getHeapSpaceStatistics, setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const controlDir = process.env.BENCH_CONTROL_DIR;
let session = null;
let imports = 0;

function youngGenerationBytes() {
  return getHeapSpaceStatistics()
    .filter((space) => space.space_name === 'new_space' || space.space_name === 'new_large_object_space')
    .reduce((sum, space) => sum + space.physical_space_size, 0);
}

function reply(id, body) {
  const file = join(controlDir, `reply-${process.pid}.json`);
  // Written under another name first, so the harness never reads half a file.
  writeFileSync(`${file}.tmp`, JSON.stringify({ id, ...body }));
  renameSync(`${file}.tmp`, file);
}

function run(request) {
  switch (request.command) {
    case 'gc':
      // A backend run through tsx has its module loader in a worker thread with a V8 heap of its own.
      // That thread sleeps until the next module load, so its pending GC work waits too. A tiny import
      // wakes it first. The harness runs a JavaScript build, where the import costs next to nothing.
      import(`data:text/javascript,export default ${++imports}`).finally(() => {
        gc();
        gc();
        reply(request.id, { youngBytes: youngGenerationBytes() });
      });
      break;
    case 'profile-start':
      session ??= new Session();
      session.connect();
      session.post('Profiler.enable');
      session.post('Profiler.start', () => reply(request.id, {}));
      break;
    case 'profile-stop':
      if (!session) {
        reply(request.id, { error: 'no profile is running' });
        break;
      }
      session.post('Profiler.stop', (err, result) => {
        if (!err) writeFileSync(request.file, JSON.stringify(result.profile));
        session.disconnect();
        reply(request.id, err ? { error: err.message } : {});
      });
      break;
    case 'heap-snapshot':
      writeHeapSnapshot(request.file);
      reply(request.id, {});
      break;
    default:
      reply(request.id, { error: `unknown command ${request.command}` });
  }
}

process.on('SIGUSR2', () => {
  if (!controlDir) return;
  try {
    run(JSON.parse(readFileSync(join(controlDir, `command-${process.pid}.json`), 'utf8')));
  } catch (err) {
    process.stderr.write(`benchmark control command failed: ${err.message}\n`);
  }
});
