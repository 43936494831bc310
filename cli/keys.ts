import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { detachedSignature, generateSigningKeys } from '../security/patch-signing.ts';
import { CliError, EXIT } from './storage-access.ts';

/** `fleet keys create`: a patch signing key pair and a device token secret, written to files. */
export async function createKeys(options: { out: string }): Promise<void> {
  await mkdir(options.out, { recursive: true });
  const { publicKey, privateKey } = generateSigningKeys();
  const privatePath = join(options.out, 'fleet-signing.key');
  const publicPath = join(options.out, 'fleet-signing.pub');
  const secretPath = join(options.out, 'device-token-secret');
  await writeFile(privatePath, privateKey, { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') throw new CliError(`${privatePath} exists; refusing to overwrite a signing key`, EXIT.conflict);
    throw err;
  });
  await writeFile(publicPath, publicKey);
  await writeFile(secretPath, randomBytes(48).toString('base64'), { mode: 0o600 });
  process.stdout.write(
    [
      `wrote ${privatePath} (keep it with the operators who release patches; FLEET_SIGNING_KEY_FILE)`,
      `wrote ${publicPath} (give it to every replica and every device; FLEET_SIGNING_PUBLIC_KEY)`,
      `wrote ${secretPath} (give it to every replica and to the CLI; FLEET_DEVICE_TOKEN_SECRET)`,
      '',
      `export FLEET_SIGNING_PUBLIC_KEY="$(cat ${publicPath})"`,
      `export FLEET_DEVICE_TOKEN_SECRET="$(cat ${secretPath})"`,
      `export FLEET_SIGNING_KEY_FILE=${privatePath}`,
      '',
    ].join('\n'),
  );
}

export async function readSigningKey(path: string | undefined): Promise<string | undefined> {
  if (!path) return undefined;
  try {
    return await readFile(path, 'utf8');
  } catch {
    throw new CliError(`cannot read the signing key ${path}`, EXIT.usage);
  }
}

/**
 * `fleet patch sign FILE`: writes FILE.sig, a detached signature for a patch that enters the bucket by
 * another tool (`mc cp FILE FILE.sig s3/bucket/`).
 */
export async function signPatchFile(file: string, options: { id?: string; name?: string; version?: string; key?: string }) {
  const privateKey = await readSigningKey(options.key ?? process.env.FLEET_SIGNING_KEY_FILE);
  if (!privateKey) throw new CliError('no signing key: pass --key FILE or set FLEET_SIGNING_KEY_FILE', EXIT.usage);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(file)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch {
    throw new CliError(`cannot read ${file}: no such file`, EXIT.usage);
  }
  const id = options.id ?? basename(file);
  const manifest = { id, name: options.name ?? id, version: options.version ?? id, size, sha256: hash.digest('hex') };
  await writeFile(`${file}.sig`, detachedSignature(privateKey, manifest));
  process.stdout.write(`wrote ${file}.sig for ${id} (sha256 ${manifest.sha256})\n`);
}
