import type { DeviceErrorCode } from '../protocol/errors.ts';
import type { ProgressState, UpdateState } from '../protocol/states.ts';
import type { FailureReason } from './update.ts';

/**
 * Events of one simulated camera. SimulatedFleet emits the same events for all its cameras, and every payload
 * names its device, so one listener on the fleet can follow thousands of cameras.
 */
export interface CameraEvents {
  /** `welcome` arrived. `connection` counts the accepted connections of this camera, from 1. */
  connected: [event: { deviceId: string; sessionId: string; connection: number }];
  /** The socket closed. `reconnectInMs` is null when the camera will not reconnect. */
  disconnected: [
    event: { deviceId: string; code: number; reason: string; wasOnline: boolean; reconnectInMs: number | null },
  ];
  progress: [event: { deviceId: string; patchId: string; attempt: number; state: ProgressState; bytes?: number }];
  /** The camera applied a patch. `applyCount` above 1 would mean it applied the same patch twice. */
  applied: [event: { deviceId: string; patchId: string; attempt: number; applyCount: number }];
  failed: [event: { deviceId: string; patchId: string; attempt: number; reason: FailureReason; detail: string }];
  /** An offer named a patch the camera had applied already. It reported `applied` again without applying. */
  'already-applied': [event: { deviceId: string; patchId: string; attempt: number }];
  /** A download continued from `offset` bytes received before, instead of starting over. */
  resumed: [event: { deviceId: string; patchId: string; attempt: number; offset: number }];
  /** The server acknowledged a result, so the camera stopped sending it. */
  acknowledged: [event: { deviceId: string; patchId: string; attempt: number; state: UpdateState }];
  'server-error': [
    event: { deviceId: string; code: DeviceErrorCode; message: string; retryable: boolean; details?: string },
  ];
  /** A frame from the server broke the protocol schema. The camera ignored it. */
  'invalid-message': [event: { deviceId: string; details: string }];
  /** The camera stopped for good: `closeCode` is the 4100-4199 code that ended it, or null after `stop()`. */
  stopped: [event: { deviceId: string; closeCode: number | null }];
}

export type CameraEventName = keyof CameraEvents;

export const CAMERA_EVENT_NAMES: readonly CameraEventName[] = [
  'connected',
  'disconnected',
  'progress',
  'applied',
  'failed',
  'already-applied',
  'resumed',
  'acknowledged',
  'server-error',
  'invalid-message',
  'stopped',
];
