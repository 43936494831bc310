/**
 * States of one device for one patch. An attempt moves forward only: offered → downloading → verifying →
 * applying → a terminal state. The server starts a new attempt (attempt + 1) only after a terminal state other
 * than `applied`, so (attempt, rank) never decreases for a device and a patch.
 */
export const UPDATE_STATES = [
  'offered',
  'downloading',
  'verifying',
  'applying',
  'applied',
  'failed',
  'timed_out',
] as const;

export type UpdateState = (typeof UPDATE_STATES)[number];

/** States a device reports while it works on a patch. */
export const PROGRESS_STATES = ['downloading', 'verifying', 'applying'] as const;
export type ProgressState = (typeof PROGRESS_STATES)[number];

export const TERMINAL_STATES: readonly UpdateState[] = ['applied', 'failed', 'timed_out'];
