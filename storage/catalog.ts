import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { isValidId } from '../protocol/names.ts';
import { PatchExistsError, type PatchBucket } from './bucket.ts';
import type { AddPatchResult, StateStore } from './state-store.ts';

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

/**
 * The three ways a patch enters the catalog: an upload through this module, an object put straight into the
 * bucket (found by scanBucket), and an id pushed onto the `patch_files` list with redis-cli (completed by
 * inspectListed). Each ends in the same atomic add_patch script, which also tells every replica.
 */
export class Catalog {
  constructor(
    private readonly state: StateStore,
    private readonly bucket: PatchBucket,
    private readonly log: Logger,
  ) {}

  /** Streams a patch file into the bucket, hashing it on the way, and appends it to the catalog. */
  async upload(
    patchId: string,
    body: Readable,
    size: number,
    options: { name?: string; onBytes?: (bytes: number) => void } = {},
  ): Promise<{ sha256: string; result: AddPatchResult }> {
    if (!isValidId(patchId)) throw new InvalidPatchIdError(patchId);
    let stored;
    try {
      stored = await this.bucket.upload(patchId, body, size, options.onBytes);
    } catch (err) {
      if (err instanceof PatchExistsError) body.destroy();
      throw err;
    }
    const result = await this.state.addPatch(
      { id: patchId, name: options.name ?? patchId, size, sha256: stored.sha256, etag: stored.etag, source: 'upload' },
      true,
    );
    if (result.kind === 'conflict') throw new PatchConflictError(patchId, result.sha256);
    this.log.info({ patchId, size, sha256: stored.sha256 }, 'patch uploaded');
    return { sha256: stored.sha256, result };
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
      if (!isValidId(patchId)) {
        this.log.warn({ patchId }, 'catalog entry is not a valid patch id; offers skip it');
        await this.state.markPatchMissing(patchId);
        completed += 1;
        continue;
      }
      const head = await this.bucket.head(patchId);
      if (!head) {
        this.log.warn({ patchId }, 'catalog entry names no object in the bucket; offers skip it');
        await this.state.markPatchMissing(patchId);
        completed += 1;
        continue;
      }
      const { sha256, size } = await this.bucket.hashObject(patchId);
      const result = await this.state.addPatch(
        { id: patchId, name: patchId, size, sha256, etag: head.etag, source: 'catalog' },
        false,
      );
      this.log.info({ patchId, size, sha256, result: result.kind }, 'catalog entry inspected');
      completed += 1;
    }
    return completed;
  }

  /**
   * Adds objects that appeared in the bucket without going through upload (e.g. `mc cp`), oldest first.
   * Keys outside the id grammar are skipped with a warning. Returns the ids added.
   */
  async scanBucket(): Promise<string[]> {
    const objects = await this.bucket.list();
    const fresh = [];
    for (const object of objects) {
      if ((await this.state.getPatch(object.key))?.state === 'ready') continue;
      if (!isValidId(object.key)) {
        this.log.warn({ key: object.key }, 'bucket object key is not a valid patch id; not added to the catalog');
        continue;
      }
      fresh.push(object);
    }
    fresh.sort((a, b) => a.lastModified.getTime() - b.lastModified.getTime() || a.key.localeCompare(b.key));
    const added: string[] = [];
    for (const object of fresh) {
      const { sha256, size } = await this.bucket.hashObject(object.key);
      const listed = (await this.state.catalog()).includes(object.key);
      const result = await this.state.addPatch(
        { id: object.key, name: object.key, size, sha256, etag: object.etag, source: 'bucket' },
        !listed,
      );
      if (result.kind === 'added') added.push(object.key);
      this.log.info({ patchId: object.key, size, sha256, result: result.kind }, 'bucket object added to catalog');
    }
    return added;
  }
}
