import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { SingleBar } from 'cli-progress';
import { PatchExistsError } from '../storage/bucket.ts';
import { InvalidPatchIdError, PatchConflictError, SigningKeyError } from '../storage/catalog.ts';
import { readSigningKey } from './keys.ts';
import { bytes, table } from './format.ts';
import { CliError, EXIT, openStorage } from './storage-access.ts';

export interface UploadOptions {
  id?: string;
  name?: string;
  version?: string;
  key?: string;
  json?: boolean;
}

/** `fleet patch upload FILE`: streams the file into the bucket with a progress bar and releases it. */
export async function uploadPatch(file: string, options: UploadOptions): Promise<void> {
  const info = await stat(file).catch(() => {
    throw new CliError(`cannot read ${file}: no such file`, EXIT.usage);
  });
  if (!info.isFile()) throw new CliError(`${file} is not a regular file`, EXIT.usage);
  const patchId = options.id ?? basename(file);
  const signingKey = await readSigningKey(options.key ?? process.env.FLEET_SIGNING_KEY_FILE);
  const storage = await openStorage();
  if (!signingKey && storage.config.security.requireSignatures) {
    await storage.close();
    throw new CliError(
      'this fleet requires signed patches: pass --key FILE or set FLEET_SIGNING_KEY_FILE (see `fleet keys create`)',
      EXIT.usage,
    );
  }
  const progress = options.json || !process.stderr.isTTY ? null : new SingleBar({
    format: `uploading ${patchId} [{bar}] {percentage}% {value}/{total} bytes`,
    stream: process.stderr,
  });
  progress?.start(info.size, 0);
  try {
    await storage.bucket.ensureBucket();
    const { sha256, result, signed, state } = await storage.catalog.upload(patchId, createReadStream(file), info.size, {
      ...(options.name ? { name: options.name } : {}),
      ...(options.version ? { version: options.version } : {}),
      ...(signingKey ? { signingKey } : {}),
      onBytes: (sent) => progress?.update(sent),
    });
    progress?.stop();
    if (options.json) {
      const summary = { id: patchId, size: info.size, sha256, signed, state, result: result.kind };
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      process.stdout.write(`released ${patchId} (${bytes(info.size)}, sha256 ${sha256}, ${signed ? 'signed' : 'unsigned'})\n`);
    }
  } catch (err) {
    progress?.stop();
    if (err instanceof PatchExistsError || err instanceof PatchConflictError) {
      throw new CliError(err.message, EXIT.conflict);
    }
    if (err instanceof InvalidPatchIdError) throw new CliError(`${err.message}; choose one with --id`, EXIT.usage);
    if (err instanceof SigningKeyError) throw new CliError(err.message, EXIT.usage);
    throw err;
  } finally {
    await storage.close();
  }
}

/** `fleet patch list`: the catalog in release order. */
export async function listPatches(options: { json?: boolean }): Promise<void> {
  const storage = await openStorage();
  try {
    const patches = [];
    for (const id of await storage.state.catalog()) {
      const record = await storage.state.getPatch(id);
      patches.push({
        id,
        name: record?.name ?? id,
        size: record?.size ?? null,
        sha256: record?.sha256 ?? null,
        state: record?.state ?? 'pending',
        source: record?.source ?? null,
        addedAt: record?.addedAt ? new Date(record.addedAt).toISOString() : null,
      });
    }
    if (options.json) {
      process.stdout.write(`${JSON.stringify(patches)}\n`);
      return;
    }
    const rows = patches.map((p, i) => [
      i + 1,
      p.id,
      p.state,
      p.size === null ? '-' : bytes(p.size),
      p.sha256 ? p.sha256.slice(0, 12) : '-',
      p.addedAt ?? '-',
    ]);
    process.stdout.write(`${table(['#', 'PATCH', 'STATE', 'SIZE', 'SHA256', 'ADDED'], rows)}\n`);
  } finally {
    await storage.close();
  }
}
