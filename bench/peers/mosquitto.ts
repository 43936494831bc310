import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local/redis-server.ts';
import { sleep } from '../lib/stats.ts';
import { exited, stopChild } from '../lib/processes.ts';

export interface Mosquitto {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export function mosquittoInstalled(): boolean {
  return spawnSync('mosquitto', ['-h'], { stdio: 'ignore' }).error === undefined;
}

/**
 * Starts a private Mosquitto broker on a free port of 127.0.0.1 with its own configuration file, so the
 * system broker on 1883 is neither used nor loaded. Anonymous clients, no persistence, no log file.
 */
export async function startMosquitto(): Promise<Mosquitto> {
  if (!mosquittoInstalled()) {
    throw new Error('mosquitto is not installed; the fan-out yardstick needs it (Debian: apt-get install mosquitto)');
  }
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-mosquitto-'));
  const configFile = join(dir, 'mosquitto.conf');
  await writeFile(
    configFile,
    [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest none', 'max_connections -1', ''].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with code ${child.exitCode}: ${stderr.trim()}`);
    if (await listening(port)) break;
    if (tries >= 100) {
      await stopChild(child);
      throw new Error(`mosquitto did not listen on 127.0.0.1:${port} within 5 s`);
    }
    await sleep(50);
  }
  return {
    port,
    pid: child.pid ?? 0,
    async stop() {
      await stopChild(child);
      await exited(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
