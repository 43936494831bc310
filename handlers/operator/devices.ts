import { isValidId } from '../../protocol/names.ts';
import { issueDeviceToken } from '../../security/device-provisioning.ts';
import type { DeviceRecord } from '../../storage/state-store.ts';
import { ApiError } from './errors.ts';
import type { ApiHandler } from './context.ts';

const PAGE = 500;
/** Devices read from Redis per list request at most; a sparse filter returns fewer rows and a cursor. */
const MAX_SCANNED = 5000;

function deviceId(params: Record<string, string>): string {
  const id = params.id ?? '';
  if (!isValidId(id)) throw new ApiError('invalid_device_id', 'use 1 to 128 characters from A-Z a-z 0-9 . _ -', id);
  return id;
}

function decodeCursor(cursor: string | null): string {
  if (!cursor) return '';
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!isValidId(id)) throw new ApiError('invalid_cursor', 'pass the `next` value of the previous page', cursor);
  return id;
}

function matcher(query: URLSearchParams): (device: DeviceRecord) => boolean {
  const online = query.get('online');
  if (online !== null && online !== 'true' && online !== 'false') {
    throw new ApiError('invalid_request', 'online must be true or false', online);
  }
  const model = query.get('model');
  const firmware = query.get('firmware');
  const tag = query.get('tag');
  const has = query.get('patch');
  const lacks = query.get('missing');
  const search = query.get('q');
  return (d) =>
    (online === null || d.online === (online === 'true')) &&
    (model === null || d.model === model) &&
    (firmware === null || d.firmware === firmware) &&
    (tag === null || d.tags.includes(tag) || d.reportedTags.includes(tag)) &&
    (has === null || d.applied.includes(has)) &&
    (lacks === null || !d.applied.includes(lacks)) &&
    (search === null || d.id.includes(search));
}

/**
 * GET /v1/devices: one page of devices in id order, filtered by online, model, firmware, tag, patch
 * (applied), missing (not applied) and q (id contains). Reads Redis a page at a time and stops after
 * MAX_SCANNED devices, so a request never loads the whole fleet; `next` continues where it stopped.
 */
export const listDevices: ApiHandler = async (ctx, request) => {
  const limitText = request.query.get('limit') ?? '100';
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > PAGE) {
    throw new ApiError('invalid_request', `limit must be a whole number from 1 to ${PAGE}`, limitText);
  }
  const matches = matcher(request.query);
  let after = decodeCursor(request.query.get('cursor'));
  const devices: DeviceRecord[] = [];
  let scanned = 0;
  let exhausted = false;
  while (devices.length < limit && scanned < MAX_SCANNED) {
    const page = await ctx.state.listDevices(after, Math.min(PAGE, limit - devices.length + 50));
    scanned += page.devices.length;
    for (const device of page.devices) {
      after = device.id;
      if (matches(device)) devices.push(device);
      if (devices.length === limit) break;
    }
    if (!page.next && devices.length < limit) {
      exhausted = true;
      break;
    }
  }
  const next = exhausted ? null : Buffer.from(after).toString('base64url');
  return { status: 200, body: { devices, next } };
};

/** GET /v1/devices/{id}: the record and its timeline, newest first. */
export const showDevice: ApiHandler = async (ctx, request) => {
  const id = deviceId(request.params);
  const record = await ctx.state.getDevice(id);
  if (!record) throw new ApiError('not_found', `no device ${id}`, id);
  return { status: 200, body: { ...record, timeline: await ctx.state.timeline(id) } };
};

/** POST /v1/devices/{id}/token: provisions the device if needed and returns a token for it. */
export const issueToken: ApiHandler = async (ctx, request) => {
  const id = deviceId(request.params);
  const ttlText = request.query.get('ttl') ?? '0';
  const ttl = Number(ttlText);
  if (!Number.isInteger(ttl) || ttl < 0) throw new ApiError('invalid_request', 'ttl must be whole seconds', ttlText);
  const token = await issueDeviceToken(ctx.state, ctx.deviceTokens, id, ttl);
  ctx.log.info({ deviceId: id, operator: request.operator.name }, 'device token issued');
  return { status: 201, body: { deviceId: id, token, ttlSeconds: ttl } };
};

/** POST /v1/devices/{id}/revoke */
export const revokeDevice: ApiHandler = async (ctx, request) => {
  const id = deviceId(request.params);
  const generation = await ctx.state.revokeDeviceTokens(id);
  ctx.log.info({ deviceId: id, operator: request.operator.name }, 'device tokens revoked');
  return { status: 200, body: { deviceId: id, tokenGeneration: generation } };
};

/** POST /v1/devices/{id}/accept: accepts a pending device. */
export const acceptDevice: ApiHandler = async (ctx, request) => {
  const id = deviceId(request.params);
  const { before } = await ctx.state.provisionDevice(id);
  return { status: 200, body: { deviceId: id, enrollment: 'accepted', before } };
};

/** PUT /v1/devices/{id}/tags with {"tags": [...]}: replaces the device's tags. */
export const setTags: ApiHandler = async (ctx, request) => {
  const id = deviceId(request.params);
  const tags = (request.json as { tags?: unknown } | undefined)?.tags;
  if (!Array.isArray(tags) || tags.length > 32 || !tags.every((tag) => typeof tag === 'string' && isValidId(tag))) {
    throw new ApiError('invalid_request', 'send {"tags": [...]}: at most 32 tags, each in the id grammar', tags);
  }
  if (!(await ctx.state.getDevice(id))) throw new ApiError('not_found', `no device ${id}`, id);
  await ctx.state.setTags(id, tags as string[]);
  return { status: 200, body: { deviceId: id, tags } };
};
