import { randomUUID } from 'node:crypto';
import { StateRecovery } from '../storage/recovery.ts';
import type { Connection } from './connection.ts';
import type { ReplicaServices } from './services.ts';

/**
 * How long after a detected data loss devices with a valid token but no record are provisioned again.
 * NOTE: an estimate of how long the devices that were connected take to come back. A device offline for
 * longer gets `device_not_provisioned` until an operator provisions it again.
 */
export const READMIT_WINDOW_MS = 24 * 3600 * 1000;

/** State that a Redis without persistence loses in a restart and that no device can report back. */
const NOT_RECOVERABLE = [
  'token revocations',
  'operator tokens made with fleet operator create',
  'pending enrolments',
  'failed and timed-out attempts and the attempt counts',
  'device timelines',
  'the catalog order of entries pushed with RPUSH (the bucket scan orders by upload time)',
];

/**
 * Watches the epoch marker in Redis. When it vanishes or changes, Redis lost what this replica saw there:
 * the watch opens the re-admission window, logs what cannot be rebuilt, and calls `onLoss`, which drops the
 * replica's devices so that each says hello again and reports the patches it holds.
 */
export class StateLossWatch {
  private known: string | null = null;
  private readonly recovery: StateRecovery;

  constructor(
    private readonly services: ReplicaServices,
    private readonly onLoss: () => void,
  ) {
    this.recovery = new StateRecovery(services.state.redis, services.state.keys);
  }

  /** True once the watch has read the epoch; a loss before that goes unnoticed by this replica. */
  get watching(): boolean {
    return this.known !== null;
  }

  async check(): Promise<void> {
    // A fresh candidate each time: had this replica written the epoch that was lost, its old id would
    // otherwise be written again and the loss would go unnoticed.
    const epoch = await this.recovery.epoch(randomUUID());
    const previous = this.known;
    this.known = epoch;
    if (previous === null || previous === epoch) return;

    const { config, log, registry } = this.services;
    const opened = await this.recovery.openWindow(READMIT_WINDOW_MS, { replica: config.replicaId, detectedAt: Date.now() });
    log.error(
      {
        devices: registry.open.size,
        readmitWindowMs: READMIT_WINDOW_MS,
        openedWindow: opened,
        lost: NOT_RECOVERABLE,
      },
      'redis lost its data; devices reconnect and report their patches, the bucket scan rebuilds the catalog, ' +
        'devices with valid tokens are re-admitted',
    );
    this.onLoss();
  }
}

/**
 * Closes `connections` with `internal_error`, spread evenly over `spreadMs` so that they do not all
 * reconnect in the same instant.
 */
export async function closeSpread(connections: Connection[], spreadMs: number): Promise<void> {
  const step = connections.length > 0 ? spreadMs / connections.length : 0;
  const started = performance.now();
  for (const [index, connection] of connections.entries()) {
    const due = started + index * step - performance.now();
    if (due > 1) await new Promise((resolve) => setTimeout(resolve, due));
    connection.close('internal_error');
  }
}
