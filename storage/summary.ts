import type { UpdateState } from '../protocol/states.ts';
import type { PatchState, StateStore } from './state-store.ts';

export interface PatchSummary {
  id: string;
  name: string;
  size: number;
  sha256: string;
  state: PatchState | 'pending';
  counts: Partial<Record<UpdateState, number>>;
}

export interface FleetSummary {
  devices: number;
  online: number;
  inFlight: number;
  patches: PatchSummary[];
  /** Devices per firmware version and per model, as last reported in hello. */
  firmware: Record<string, number>;
  models: Record<string, number>;
}

function positiveCounts(raw: Record<string, string>): Record<string, number> {
  return Object.fromEntries(Object.entries(raw).filter(([, n]) => Number(n) > 0).map(([k, n]) => [k, Number(n)]));
}

/**
 * Counts devices with a live presence lease. SCAN walks the keyspace in steps, so this never blocks Redis,
 * but it costs time in proportion to the number of keys. The prefix passed config validation and holds no
 * glob characters.
 */
export async function countOnline(state: StateStore): Promise<number> {
  let cursor = '0';
  let online = 0;
  do {
    const [next, keys] = await state.redis.scan(cursor, 'MATCH', `${state.keys.prefix}presence:*`, 'COUNT', 1000);
    cursor = next;
    online += keys.length;
  } while (cursor !== '0');
  return online;
}

/** The fleet at a glance: device counts and, per catalog entry, how many devices are in each state. */
export async function summarizeFleet(state: StateStore): Promise<FleetSummary> {
  const ids = await state.catalog();
  const [devices, online, inFlight, patches, firmware, models] = await Promise.all([
    state.deviceCount(),
    countOnline(state),
    state.inFlightCount(),
    Promise.all(
      ids.map(async (id): Promise<PatchSummary> => {
        const [record, counts] = await Promise.all([state.getPatch(id), state.patchCounts(id)]);
        return {
          id,
          name: record?.name ?? id,
          size: record?.size ?? 0,
          sha256: record?.sha256 ?? '',
          state: record?.state ?? 'pending',
          counts,
        };
      }),
    ),
    state.redis.hgetall(state.keys.firmwareCounts),
    state.redis.hgetall(state.keys.modelCounts),
  ]);
  return { devices, online, inFlight, patches, firmware: positiveCounts(firmware), models: positiveCounts(models) };
}
