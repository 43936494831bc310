import { createHash } from 'node:crypto';

/** Hardware models and firmware versions the simulated cameras report in `hello`. */
export const CAMERA_MODELS = ['dome-4k', 'bullet-1080p', 'ptz-2k'] as const;
export const FIRMWARE_VERSIONS = ['2.3.0', '2.3.1', '2.4.0'] as const;

/**
 * Maps the device id to a number in [0, 1) that stays the same across runs and processes. The salt separates
 * independent choices, so a camera's model does not predict whether it is chosen to fail.
 */
export function hashFraction(deviceId: string, salt: string): number {
  const digest = createHash('sha256').update(salt).update('\0').update(deviceId).digest();
  return digest.readUInt32BE(0) / 2 ** 32;
}

function pick<T>(values: readonly T[], fraction: number): T {
  const value = values[Math.floor(fraction * values.length)];
  if (value === undefined) throw new RangeError(`fraction ${fraction} is outside [0, 1)`);
  return value;
}

/** Returns the model and firmware of a camera, chosen from its id so that every run reports the same ones. */
export function deviceProfile(deviceId: string): { model: string; firmware: string } {
  return {
    model: pick(CAMERA_MODELS, hashFraction(deviceId, 'model')),
    firmware: pick(FIRMWARE_VERSIONS, hashFraction(deviceId, 'firmware')),
  };
}

/** Tells whether the camera belongs to the `failureRate` share of cameras whose every apply fails. */
export function isAlwaysFailing(deviceId: string, failureRate: number): boolean {
  return hashFraction(deviceId, 'failure') < failureRate;
}

/** Formats a fleet device id, e.g. `deviceIdAt('cam_', 42, 4)` is `cam_0042`. */
export function deviceIdAt(prefix: string, index: number, width: number): string {
  return `${prefix}${String(index).padStart(width, '0')}`;
}
