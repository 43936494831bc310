import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { isValidId } from '../protocol/names.ts';
import { signManifest, verifyManifest, type PatchManifest } from '../security/patch-signing.ts';
import { PatchExistsError, type PatchBucket } from './bucket.ts';
import type { AddPatchResult, NewPatch, StateStore } from './state-store.ts';

/** Suffix of a detached signature object: `fix.bin.sig` signs `fix.bin`. */
export const SIGNATURE_SUFFIX = '.sig';
const MAX_SIGNATURE_OBJECT_BYTES = 4096;

export interface SigningPolicy {
  /** Fleet public key (PEM) that every signature must verify against; null when none is configured. */
  publicKey: string | null;
  /** When true, a patch without a valid signature is recorded as `unsigned` and never offered. */
  requireSignatures: boolean;
}

/** Contents of a detached signature object, as written by `fleet patch sign`. */
export interface DetachedSignature {
  name?: string;
  version?: string;
  signature: string;
}

export class PatchConflictError extends Error {
  readonly code = 'patch_conflict';
  constructor(
    readonly patchId: string,
    readonly recordedSha256: string,
  ) {
    super(`patch ${patchId} is already in the catalog with sha256 ${recordedSha256}; upload under a new name`);
  }
}

export class InvalidPatchIdError extends Error {
  readonly code = 'invalid_patch_id';
  constructor(readonly patchId: string) {
    super(
      `invalid patch id ${JSON.stringify(patchId)}: use 1 to 128 characters from A-Z a-z 0-9 . _ -, ` +
        'not starting with a dot',
    );
  }
}

export class SigningKeyError extends Error {
  readonly code = 'signing_key_mismatch';
}

export class SignatureError extends Error {
  readonly code = 'signature_invalid';
}

/**
 * The three ways a patch enters the catalog: an upload through this module, an object put straight into the
 * bucket (found by scanBucket), and an id pushed onto the `patch_files` list with redis-cli (completed by
 * inspectListed). Each ends in the same atomic add_patch script, which also tells every replica.
 * Objects put into the bucket by other tools are signed by a detached `<id>.sig` object next to them.
 */
export class Catalog {
  /** Signature objects (`id@etag`) already tried for unsigned patches, so a bad one is not retried every scan. */
  private readonly rejectedSignatures = new Set<string>();

  constructor(
    private readonly state: StateStore,
    private readonly bucket: PatchBucket,
    private readonly log: Logger,
    private readonly signing: SigningPolicy = { publicKey: null, requireSignatures: false },
  ) {}

  /**
   * Streams a patch file into the bucket, hashing it on the way, signs its manifest with `signingKey`
   * (Ed25519 private key, PEM) when given, and appends it to the catalog.
   */
  async upload(
    patchId: string,
    body: Readable,
    size: number,
    options: {
      name?: string;
      version?: string;
      /** Ed25519 private key (PEM) to sign the manifest with, once the sha256 is known. */
      signingKey?: string;
      /** A signature made beforehand by the uploader; the upload is undone if it does not verify. */
      signature?: string;
      onBytes?: (bytes: number) => void;
    } = {},
  ): Promise<{ sha256: string; result: AddPatchResult; signed: boolean; state: NewPatch['state'] }> {
    if (!isValidId(patchId)) throw new InvalidPatchIdError(patchId);
    if (options.signingKey) this.checkSigningKey(options.signingKey);
    let stored;
    try {
      stored = await this.bucket.upload(patchId, body, size, options.onBytes);
    } catch (err) {
      if (err instanceof PatchExistsError) body.destroy();
      throw err;
    }
    const manifest: PatchManifest = {
      id: patchId,
      name: options.name ?? patchId,
      version: options.version ?? patchId,
      size,
      sha256: stored.sha256,
    };
    const signature = options.signingKey ? signManifest(options.signingKey, manifest) : (options.signature ?? null);
    const { publicKey } = this.signing;
    if (options.signature && publicKey !== null && !verifyManifest(publicKey, manifest, options.signature)) {
      await this.bucket.remove(patchId);
      throw new SignatureError(`the signature of ${patchId} does not verify with the fleet public key; upload undone`);
    }
    const patch = this.recordFor(manifest, stored.etag, 'upload', signature);
    if (patch.signature !== null) {
      // The bucket keeps the signature too, so a scan can rebuild this record after Redis lost its data.
      const detached: DetachedSignature = { name: manifest.name, version: manifest.version, signature: patch.signature };
      await this.bucket.putSmall(patchId + SIGNATURE_SUFFIX, JSON.stringify(detached));
    }
    // An empty catalog next to a bucket with patches means Redis lost its data and no scan has rebuilt the
    // list yet. Appending first would put this patch before the older ones, so they are added first.
    if ((await this.state.catalogLength()) === 0) await this.scanBucket(patchId);
    const result = await this.state.addPatch(patch, true);
    if (result.kind === 'conflict') throw new PatchConflictError(patchId, result.sha256);
    this.log.info({ patchId, size, sha256: stored.sha256, state: patch.state }, 'patch uploaded');
    return { sha256: stored.sha256, result, signed: signature !== null, state: patch.state };
  }

  /**
   * Completes catalog entries that someone pushed onto the list without metadata: hashes the object, or
   * marks the entry missing when the bucket has no such object. Returns the number of entries completed.
   */
  async inspectListed(lockOwner: string): Promise<number> {
    let completed = 0;
    for (const patchId of await this.state.catalog()) {
      if (await this.state.getPatch(patchId)) continue;
      if (!(await this.state.tryLock(`inspect:${patchId}`, lockOwner, 60_000))) continue;
      const head = isValidId(patchId) ? await this.bucket.head(patchId) : null;
      if (!head) {
        this.log.warn({ patchId }, 'catalog entry is not a valid patch id or names no object; offers skip it');
        await this.state.markPatchMissing(patchId);
        completed += 1;
        continue;
      }
      const result = await this.adopt(patchId, head.etag, 'catalog', false);
      this.log.info({ patchId, result: result.kind }, 'catalog entry inspected');
      completed += 1;
    }
    return completed;
  }

  /**
   * Adds objects that appeared in the bucket without going through upload (e.g. `mc cp`), oldest first, and
   * completes unsigned patches whose detached signature arrived since. Keys outside the id grammar and
   * signature objects are not patches. Returns the ids added or completed. `skip` is left out: an upload
   * that asks for a scan adds its own object afterwards.
   */
  async scanBucket(skip?: string): Promise<string[]> {
    const objects = await this.bucket.list();
    const byKey = new Map(objects.map((o) => [o.key, o]));
    const fresh = [];
    for (const object of objects) {
      if (object.key.endsWith(SIGNATURE_SUFFIX) || object.key === skip) continue;
      if (!isValidId(object.key)) {
        this.log.warn({ key: object.key }, 'bucket object key is not a valid patch id; not added to the catalog');
        continue;
      }
      const known = await this.state.getPatch(object.key);
      // Ready and retired patches are settled; an operator's retirement must not be undone by a scan.
      if (known?.state === 'ready' || known?.state === 'retired') continue;
      if (known?.state === 'unsigned') {
        const signature = byKey.get(object.key + SIGNATURE_SUFFIX);
        // Only a new or changed signature object is worth hashing the patch again.
        if (!signature || this.rejectedSignatures.has(`${object.key}@${signature.etag}`)) continue;
        this.rejectedSignatures.add(`${object.key}@${signature.etag}`);
      }
      fresh.push(object);
    }
    fresh.sort((a, b) => a.lastModified.getTime() - b.lastModified.getTime() || a.key.localeCompare(b.key));
    const added: string[] = [];
    const listed = new Set(await this.state.catalog());
    for (const object of fresh) {
      const result = await this.adopt(object.key, object.etag, 'bucket', !listed.has(object.key));
      if (result.kind === 'added') added.push(object.key);
      this.log.info({ patchId: object.key, result: result.kind }, 'bucket object added to catalog');
    }
    return added;
  }

  /** Hashes an object already in the bucket, reads its detached signature if any, and records it. */
  private async adopt(patchId: string, etag: string, source: NewPatch['source'], append: boolean) {
    const { sha256, size } = await this.bucket.hashObject(patchId);
    const detached = await this.readDetachedSignature(patchId);
    const manifest: PatchManifest = {
      id: patchId,
      name: detached?.name ?? patchId,
      version: detached?.version ?? patchId,
      size,
      sha256,
    };
    return this.state.addPatch(this.recordFor(manifest, etag, source, detached?.signature ?? null), append);
  }

  private async readDetachedSignature(patchId: string): Promise<DetachedSignature | null> {
    const text = await this.bucket.readSmall(patchId + SIGNATURE_SUFFIX, MAX_SIGNATURE_OBJECT_BYTES);
    if (text === null) return null;
    try {
      const parsed = JSON.parse(text) as DetachedSignature;
      if (typeof parsed.signature === 'string') return parsed;
    } catch {
      // Reported below.
    }
    this.log.warn({ patchId }, 'detached signature object is not valid JSON with a signature field; ignored');
    return null;
  }

  /** Decides the state of a patch from its signature and the fleet's policy. */
  private recordFor(manifest: PatchManifest, etag: string, source: NewPatch['source'], signature: string | null): NewPatch {
    const { publicKey, requireSignatures } = this.signing;
    let valid = signature !== null;
    if (signature !== null && publicKey !== null && !verifyManifest(publicKey, manifest, signature)) {
      this.log.warn({ patchId: manifest.id }, 'patch signature does not verify with the fleet public key');
      valid = false;
    }
    const state = valid || !requireSignatures ? 'ready' : 'unsigned';
    if (state === 'unsigned') this.log.warn({ patchId: manifest.id }, 'patch has no valid signature; it will not be offered');
    return { ...manifest, etag, source, signature: valid ? signature : null, state };
  }

  private checkSigningKey(privateKey: string): void {
    if (this.signing.publicKey === null) return;
    const probe: PatchManifest = { id: 'key-check', name: 'key-check', version: '0', size: 0, sha256: '0'.repeat(64) };
    if (!verifyManifest(this.signing.publicKey, probe, signManifest(privateKey, probe))) {
      throw new SigningKeyError('the signing key does not belong to the fleet public key (FLEET_SIGNING_PUBLIC_KEY)');
    }
  }
}
