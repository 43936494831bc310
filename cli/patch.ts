import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { isValidId } from '../protocol/names.ts';
import type { UpdateState } from '../protocol/states.ts';
import { signManifest, type PatchManifest } from '../security/patch-signing.ts';
import type { PatchRecord } from '../storage/state-store.ts';
import type { PatchSummary } from '../storage/summary.ts';
import { ApiRequestError, clientFor, segment, type ApiClient } from './api-client.ts';
import { bytes, table } from './format.ts';
import { CliError, EXIT } from './errors.ts';

export interface UploadOptions {
  id?: string;
  name?: string;
  version?: string;
  key?: string;
  json?: boolean;
}

/** Body of POST /v1/patches/{id}. */
interface UploadResult {
  id: string;
  size: number;
  sha256: string;
  state: string;
  signed: boolean;
}

type PatchDetail = PatchRecord & { counts: Partial<Record<UpdateState, number>> };

/** Header values travel as Latin-1 at best; the API reads them as they come, so only printable ASCII is safe. */
const HEADER_TEXT = /^[\x20-\x7e]*$/;

export function checkPatchId(id: string): string {
  if (!isValidId(id)) {
    throw new CliError(
      `invalid patch id ${JSON.stringify(id)}: use 1 to 128 characters from A-Z a-z 0-9 . _ -, not starting with a dot; choose one with --id`,
      EXIT.usage,
    );
  }
  return id;
}

/**
 * Starts a byte counter on stderr. On a terminal it redraws in place. Elsewhere it prints a line at the start,
 * every 2 s and at the end, except with --json, where scripts read stdout and a log of stderr stays quiet.
 */
function byteProgress(label: string, total: number, json: boolean | undefined): SingleBar | null {
  const tty = process.stderr.isTTY === true;
  if (total === 0 || (!tty && json)) return null;
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% {done}/${bytes(total)}`,
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 2000,
    // A terminal keeps the finished bar. Elsewhere stop() would add a blank line after the last one.
    clearOnComplete: !tty,
    hideCursor: false,
  });
  bar.start(total, 0, { done: bytes(0) });
  return bar;
}

/** Reads the file once and returns its SHA-256 (hex) and its size in bytes. */
async function hashFile(file: string, size: number, json: boolean | undefined): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  const progress = byteProgress(`hashing   ${basename(file)}`, size, json);
  let read = 0;
  try {
    for await (const chunk of createReadStream(file)) {
      hash.update(chunk as Buffer);
      read += (chunk as Buffer).length;
      progress?.update(read, { done: bytes(read) });
    }
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`, EXIT.usage);
  } finally {
    progress?.stop();
  }
  return { sha256: hash.digest('hex'), size: read };
}

async function readSigningKey(file: string): Promise<string> {
  const pem = await readFile(file, 'utf8').catch((err: Error) => {
    throw new CliError(`cannot read the signing key ${file}: ${err.message}`, EXIT.usage);
  });
  if (pem.trim() === '') throw new CliError(`the signing key ${file} is empty; expected an Ed25519 private key in PEM form`, EXIT.usage);
  return pem;
}

function headerText(option: string, value: string): string {
  if (!HEADER_TEXT.test(value)) {
    throw new CliError(`invalid ${option} ${JSON.stringify(value)}: use printable ASCII, because it travels in an HTTP header`, EXIT.usage);
  }
  return value;
}

function signWith(privateKey: string, keyFile: string, manifest: PatchManifest): string {
  try {
    return signManifest(privateKey, manifest);
  } catch (err) {
    throw new CliError(`cannot sign with ${keyFile}: ${(err as Error).message}; expected an Ed25519 private key in PEM form`, EXIT.usage);
  }
}

/**
 * Fails with exit code 6 unless the token has the operator role, before any byte of the file is sent. The API
 * has no route that returns the role. DELETE /v1/patches/{id} with an id outside the grammar changes nothing:
 * the server checks the role before the handler runs (403), and the handler then rejects the id (400).
 */
async function checkOperatorRole(client: ApiClient): Promise<void> {
  try {
    await client.request('DELETE', `/v1/patches/${segment('!')}`);
  } catch (err) {
    if (err instanceof ApiRequestError && err.code === 'invalid_patch_id') return;
    throw err;
  }
}

/** Fails with exit code 4 when the catalog has the id already, before any byte of the file is sent. */
async function checkNewPatch(client: ApiClient, id: string): Promise<void> {
  try {
    const existing = await client.request<PatchDetail>('GET', `/v1/patches/${segment(id)}`);
    throw new CliError(
      `patch ${id} already exists (sha256 ${existing.sha256}, ${existing.state}); patch content never changes, ` +
        'so upload under a new id with --id',
      EXIT.conflict,
    );
  } catch (err) {
    if (err instanceof ApiRequestError && err.code === 'not_found') return;
    throw err;
  }
}

/**
 * `fleet patch upload FILE`: hashes the file, signs its manifest, then streams it to POST /v1/patches/{id}
 * with a progress bar. The server hashes the body again and rejects it unless the signature verifies.
 */
export async function uploadPatch(file: string, options: UploadOptions, command: Command): Promise<void> {
  const info = await stat(file).catch(() => {
    throw new CliError(`cannot read ${file}: no such file`, EXIT.usage);
  });
  if (!info.isFile()) throw new CliError(`${file} is not a regular file`, EXIT.usage);
  const id = checkPatchId(options.id ?? basename(file));
  const name = headerText('--name', options.name || id);
  const version = headerText('--version', options.version || id);
  const keyFile = options.key ?? process.env.FLEET_SIGNING_KEY_FILE;
  const privateKey = keyFile ? await readSigningKey(keyFile) : undefined;
  const client = clientFor(command);

  // A rejection in the middle of a large body reaches the CLI as a broken connection, so the rejections that
  // can be found out beforehand are checked first.
  await checkNewPatch(client, id);
  await checkOperatorRole(client);
  const { sha256, size } = await hashFile(file, info.size, options.json);
  const manifest: PatchManifest = { id, name, version, size, sha256 };
  const headers: Record<string, string> = { 'x-patch-name': name, 'x-patch-version': version };
  if (privateKey && keyFile) headers['x-patch-signature'] = signWith(privateKey, keyFile, manifest);

  const progress = byteProgress(`uploading ${id}`, size, options.json);
  let result: UploadResult;
  try {
    result = await client.upload<UploadResult>(`/v1/patches/${segment(id)}`, { path: file, size }, headers, (sent) =>
      progress?.update(sent, { done: bytes(sent) }),
    );
  } catch (err) {
    if (err instanceof ApiRequestError && err.code === 'signature_required') {
      throw new CliError(`${err.message}; pass --key FILE or set FLEET_SIGNING_KEY_FILE (\`fleet keys create\` makes a key)`, err.exitCode);
    }
    if (err instanceof ApiRequestError && err.code === 'signature_invalid') {
      throw new CliError(`${err.message}; sign with the private key that belongs to the fleet's FLEET_SIGNING_PUBLIC_KEY`, err.exitCode);
    }
    throw err;
  } finally {
    progress?.stop();
  }
  if (result.sha256 !== sha256) {
    throw new CliError(
      `the server stored ${id} with sha256 ${result.sha256}, but the file hashed to ${sha256} before the upload; ` +
        'did the file change? Retire the patch with `fleet patch retire` and upload it again',
      EXIT.failure,
    );
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const signed = result.signed ? 'signed' : 'unsigned';
  process.stdout.write(`released ${id} (${bytes(size)}, sha256 ${sha256}, ${signed}, ${result.state})\n`);
}

/** `fleet patch list`: the catalog in release order, with how many devices applied each patch. */
export async function listPatches(options: { json?: boolean }, command: Command): Promise<void> {
  const { patches, devices } = await clientFor(command).request<{ patches: PatchSummary[]; devices: number }>('GET', '/v1/patches');
  if (options.json) {
    process.stdout.write(`${JSON.stringify(patches)}\n`);
    return;
  }
  const rows = patches.map((p, i) => [
    i + 1,
    p.id,
    p.state,
    bytes(p.size),
    p.sha256 ? p.sha256.slice(0, 12) : '-',
    `${p.counts.applied ?? 0}/${devices}`,
  ]);
  process.stdout.write(`${table(['#', 'PATCH', 'STATE', 'SIZE', 'SHA256', 'APPLIED'], rows)}\n`);
}

/** `fleet patch show ID`: the catalog record and how many devices are in each update state. */
export async function showPatch(id: string, options: { json?: boolean }, command: Command): Promise<void> {
  checkPatchId(id);
  const patch = await clientFor(command).request<PatchDetail>('GET', `/v1/patches/${segment(id)}`);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(patch)}\n`);
    return;
  }
  const counts = Object.entries(patch.counts).map(([state, n]) => `${state} ${n}`).join('  ');
  const rows = [
    ['patch', patch.id],
    ['name', patch.name],
    ['version', patch.version],
    ['state', patch.state],
    ['size', `${bytes(patch.size)} (${patch.size} bytes)`],
    ['sha256', patch.sha256],
    ['signed', patch.signature ? 'yes' : 'no'],
    ['source', patch.source],
    ['added', new Date(patch.addedAt).toISOString()],
    ['devices', counts || 'none yet'],
  ];
  process.stdout.write(`${rows.map(([field, value]) => `${(field ?? '').padEnd(8)} ${value}`).join('\n')}\n`);
}

/** `fleet patch retire ID`: no device is offered the patch again; devices in the middle of it finish. */
export async function retirePatch(id: string, options: { json?: boolean }, command: Command): Promise<void> {
  checkPatchId(id);
  const result = await clientFor(command).request<{ id: string; state: string }>('DELETE', `/v1/patches/${segment(id)}`);
  process.stdout.write(options.json ? `${JSON.stringify(result)}\n` : `retired ${result.id}: no device is offered it again\n`);
}
