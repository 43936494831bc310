import type { PatchRecord, StateStore } from './state-store.ts';

/**
 * Patch metadata cached per replica. A ready patch's content never changes under its id (add_patch rejects
 * another sha256), so a cached entry never goes stale. Entries that are not ready are not cached.
 */
export class PatchCache {
  private readonly entries = new Map<string, PatchRecord>();

  constructor(private readonly state: StateStore) {}

  async get(patchId: string): Promise<PatchRecord | null> {
    const cached = this.entries.get(patchId);
    if (cached) return cached;
    const record = await this.state.getPatch(patchId);
    if (record?.state === 'ready') this.entries.set(patchId, record);
    return record;
  }
}
