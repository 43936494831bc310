import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isValidId } from '../protocol/names.ts';

/** Persisted state of one simulated camera, kept between runs. */
export interface CameraState {
  deviceId: string;
  model: string;
  firmware: string;
  /** Applied patch ids, oldest first. */
  applied: string[];
}

const FORMAT_VERSION = 1;

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function parseState(path: string, text: string): CameraState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`state file ${path} is not valid JSON. Fix or delete the file.`, { cause: err });
  }
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const { version, deviceId, model, firmware, applied } = record;
  if (version !== FORMAT_VERSION) {
    throw new Error(`state file ${path} has version ${String(version)}, expected ${FORMAT_VERSION}. Delete the file.`);
  }
  if (typeof deviceId !== 'string' || typeof model !== 'string' || typeof firmware !== 'string') {
    throw new Error(`state file ${path} is missing deviceId, model or firmware. Fix or delete the file.`);
  }
  if (!isStringArray(applied) || !applied.every(isValidId)) {
    throw new Error(`state file ${path}: "applied" must be an array of patch ids. Fix or delete the file.`);
  }
  return { deviceId, model, firmware, applied };
}

/** Reads the state file, or returns null when it does not exist. Throws when it exists but is invalid. */
export async function readStateFile(path: string): Promise<CameraState | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return parseState(path, text);
}

/**
 * Writes the state file atomically: the JSON goes to a temporary file in the same folder, which then
 * replaces the old file by rename, so a crash leaves either the old or the new state and never half of one.
 */
export async function writeStateFile(path: string, state: CameraState): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const body = JSON.stringify({ version: FORMAT_VERSION, ...state }, null, 2) + '\n';
  try {
    await writeFile(temporary, body, { mode: 0o644 });
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/** Serializes writes of one state file so that an older state can never rename over a newer one. */
export class StateFileWriter {
  private last: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  /** Queues a write of `state` and resolves when it is on disk. */
  write(state: CameraState): Promise<void> {
    const snapshot: CameraState = { ...state, applied: [...state.applied] };
    const next = this.last.then(() => writeStateFile(this.path, snapshot));
    // A failed write must not block the writes queued after it. The caller of this write still gets the error.
    this.last = next.catch(() => undefined);
    return next;
  }

  /** Resolves when every queued write has finished, whether it succeeded or not. */
  flush(): Promise<void> {
    return this.last;
  }
}
