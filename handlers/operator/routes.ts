import type { OperatorRole } from '../../security/operator-tokens.ts';
import type { ApiHandler } from './context.ts';
import { acceptDevice, issueToken, listDevices, revokeDevice, setTags, showDevice } from './devices.ts';
import { fleetSummary } from './fleet.ts';
import { listPatches, retirePatch, showPatch, uploadPatch } from './patches.ts';
import { cancelRollout, createRollout, listRollouts, pauseRollout, resumeRollout, showRollout } from './rollouts.ts';

export type HttpMethod = 'get' | 'post' | 'put' | 'delete';

export interface RouteSpec {
  method: HttpMethod;
  /** OpenAPI-style path, `{name}` for a parameter. */
  path: string;
  /** Least role that may call the route. */
  role: OperatorRole;
  summary: string;
  handler: ApiHandler;
  /** `json`: a JSON body of at most 64 KiB; `stream`: a raw body streamed to the handler. */
  body?: 'json' | 'stream';
  /** Query parameters, for the OpenAPI document. */
  query?: { name: string; description: string }[];
  /** The route answers 201 Created; by default a POST to a path ending in a parameter does. */
  created?: boolean;
}

/** The operator API, version 1. The OpenAPI document is generated from this table. */
export const ROUTES: RouteSpec[] = [
  { method: 'get', path: '/v1/summary', role: 'read', summary: 'Fleet summary: devices, online, per-patch state counts, firmware and model distribution', handler: fleetSummary },
  { method: 'get', path: '/v1/patches', role: 'read', summary: 'The patch catalog in release order, with per-state counts', handler: listPatches },
  { method: 'get', path: '/v1/patches/{id}', role: 'read', summary: 'One patch with its state counts', handler: showPatch },
  {
    method: 'post',
    path: '/v1/patches/{id}',
    role: 'operator',
    summary: 'Upload and release a patch; body is the file (application/octet-stream), sha256 computed on the way in. Headers: X-Patch-Name, X-Patch-Version, X-Patch-Signature',
    handler: uploadPatch,
    body: 'stream',
  },
  { method: 'delete', path: '/v1/patches/{id}', role: 'operator', summary: 'Retire a patch: nobody is offered it again', handler: retirePatch },
  {
    method: 'get',
    path: '/v1/devices',
    role: 'read',
    summary: 'Devices in id order, one page at a time',
    handler: listDevices,
    query: [
      { name: 'online', description: 'true or false' },
      { name: 'model', description: 'exact model' },
      { name: 'firmware', description: 'exact firmware version' },
      { name: 'tag', description: 'devices carrying this tag, set by an operator or reported in hello' },
      { name: 'patch', description: 'devices that applied this patch' },
      { name: 'missing', description: 'devices that did not apply this patch' },
      { name: 'q', description: 'device id contains this text' },
      { name: 'limit', description: 'page size, 1 to 500, default 100' },
      { name: 'cursor', description: '`next` of the previous page' },
    ],
  },
  { method: 'get', path: '/v1/devices/{id}', role: 'read', summary: 'One device with its timeline', handler: showDevice },
  {
    method: 'post',
    path: '/v1/devices/{id}/token',
    role: 'operator',
    summary: 'Provision the device if needed and issue a device token',
    handler: issueToken,
    query: [{ name: 'ttl', description: 'token lifetime in seconds; 0 for none' }],
    created: true,
  },
  { method: 'post', path: '/v1/devices/{id}/revoke', role: 'operator', summary: 'Invalidate every token of the device and disconnect it', handler: revokeDevice },
  { method: 'post', path: '/v1/devices/{id}/accept', role: 'operator', summary: 'Accept a pending device', handler: acceptDevice },
  { method: 'put', path: '/v1/devices/{id}/tags', role: 'operator', summary: 'Replace the tags of a device: {"tags": [...]}', handler: setTags, body: 'json' },
  { method: 'get', path: '/v1/rollouts', role: 'read', summary: 'Every rollout with its progress, newest first', handler: listRollouts },
  {
    method: 'post',
    path: '/v1/rollouts',
    role: 'operator',
    summary: 'Create the rollout of a patch: targets and strategy as JSON, see docs/rollouts.md; 201 with the rollout',
    handler: createRollout,
    body: 'json',
    created: true,
  },
  {
    method: 'get',
    path: '/v1/rollouts/{id}',
    role: 'read',
    summary: 'One rollout with its progress; {id} is a rollout id or a patch id',
    handler: showRollout,
    query: [{ name: 'device', description: "also that device's timeline in the rollout" }],
  },
  {
    method: 'post',
    path: '/v1/rollouts/{id}/pause',
    role: 'operator',
    summary: 'Pause: no device starts; attempts in flight finish',
    handler: pauseRollout,
    query: [{ name: 'reason', description: 'why, at most 200 characters' }],
  },
  {
    method: 'post',
    path: '/v1/rollouts/{id}/resume',
    role: 'operator',
    summary: 'Resume a paused rollout; a wave that missed its success threshold is passed',
    handler: resumeRollout,
    query: [
      { name: 'failureThreshold', description: 'new failure threshold, a device count or a percentage such as 20%' },
      { name: 'failureMinDevices', description: 'new minimum of finished devices before the threshold applies' },
    ],
  },
  {
    method: 'post',
    path: '/v1/rollouts/{id}/cancel',
    role: 'operator',
    summary: 'Cancel for good: waiting devices move on, attempts in flight finish and are not retried',
    handler: cancelRollout,
    query: [{ name: 'reason', description: 'why, at most 200 characters' }],
  },
];
