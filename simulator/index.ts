export { SimulatedCamera } from './camera.ts';
export type { CameraFailure, CameraSnapshot } from './ground-truth.ts';
export type { ConnectionState } from './connection.ts';
export { CAMERA_EVENT_NAMES, type CameraEventName, type CameraEvents } from './events.ts';
export { DownloadSlots } from './download-slots.ts';
export {
  DEFAULT_CONNECTS_PER_SECOND,
  DEFAULT_MAX_CONCURRENT_DOWNLOADS,
  fleetDeviceIds,
  SimulatedFleet,
  type FleetEvents,
  type FleetOptions,
} from './fleet.ts';
export { everyCameraApplied, everyCameraOnline, type FleetStats } from './fleet-stats.ts';
export { CAMERA_MODELS, deviceIdAt, deviceProfile, FIRMWARE_VERSIONS, hashFraction, isAlwaysFailing } from './identity.ts';
export { DEFAULT_BEHAVIOUR, type CameraBehaviour, type CameraOptions } from './options.ts';
export { seededRandom } from './random.ts';
export { readStateFile, writeStateFile, type CameraState } from './state-file.ts';
export type { FailureReason } from './update.ts';
