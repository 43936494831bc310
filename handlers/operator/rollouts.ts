import { isValidId } from '../../protocol/names.ts';
import { parseAmount, RolloutSpecError } from '../../storage/rollout-spec.ts';
import { parseRolloutSpec, RolloutExistsError, type ControlResult } from '../../storage/rollouts.ts';
import { ApiError } from './errors.ts';
import type { ApiHandler, ApiRequest, OperatorContext } from './context.ts';

const MAX_REASON = 200;

/** Finds the rollout named in the path: a rollout id, or a patch id for the patch's current rollout. */
async function rolloutId(ctx: OperatorContext, params: Record<string, string>): Promise<string> {
  const id = params.id ?? '';
  if (!isValidId(id)) throw new ApiError('invalid_request', 'invalid rollout id: give a rollout id such as r3, or a patch id', id);
  const found = await ctx.rollouts.resolve(id);
  if (!found) throw new ApiError('not_found', `no rollout ${id}, and no patch ${id} with a rollout`, id);
  return found;
}

function reasonOf(request: ApiRequest, fallback: string): string {
  const reason = request.query.get('reason') ?? '';
  if (reason.length > MAX_REASON) throw new ApiError('invalid_request', `reason may have at most ${MAX_REASON} characters`, reason.length);
  return reason || fallback;
}

function controlled(id: string, result: ControlResult): { status: number; body: unknown } {
  if (result.kind === 'not_found') throw new ApiError('not_found', `no rollout ${id}`, id);
  if (result.kind === 'invalid') throw new ApiError('rollout_cancelled', `rollout ${id} is cancelled; create a new rollout for its patch`, id);
  return { status: 200, body: { id, state: result.state } };
}

/** GET /v1/rollouts: every rollout with its progress, newest first. */
export const listRollouts: ApiHandler = async (ctx) => ({ status: 200, body: { rollouts: await ctx.rollouts.list() } });

/** POST /v1/rollouts: creates the rollout of a patch, before or after the patch is released. */
export const createRollout: ApiHandler = async (ctx, request) => {
  try {
    const rollout = await ctx.rollouts.create(parseRolloutSpec(request.json));
    ctx.log.info({ rolloutId: rollout.id, patchId: rollout.patchId, operator: request.operator.name }, 'rollout created');
    return { status: 201, body: rollout };
  } catch (err) {
    if (err instanceof RolloutSpecError) throw new ApiError('invalid_request', err.message, err.field);
    if (err instanceof RolloutExistsError) throw new ApiError('rollout_exists', err.message, err.rolloutId);
    throw err;
  }
};

/** GET /v1/rollouts/{id}: one rollout with its progress; with ?device=ID also that device's timeline in it. */
export const showRollout: ApiHandler = async (ctx, request) => {
  const id = await rolloutId(ctx, request.params);
  const rollout = await ctx.rollouts.get(id);
  if (!rollout) throw new ApiError('not_found', `no rollout ${id}`, id);
  const device = request.query.get('device');
  if (device === null) return { status: 200, body: rollout };
  if (!isValidId(device)) throw new ApiError('invalid_device_id', 'use 1 to 128 characters from A-Z a-z 0-9 . _ -', device);
  return { status: 200, body: { ...rollout, device: { id: device, timeline: await ctx.rollouts.timeline(id, device) } } };
};

/** POST /v1/rollouts/{id}/pause?reason=TEXT */
export const pauseRollout: ApiHandler = async (ctx, request) => {
  const id = await rolloutId(ctx, request.params);
  const result = await ctx.rollouts.pause(id, reasonOf(request, `paused by ${request.operator.name}`));
  ctx.log.info({ rolloutId: id, operator: request.operator.name }, 'rollout paused by an operator');
  return controlled(id, result);
};

/**
 * POST /v1/rollouts/{id}/resume, optionally with ?failureThreshold=N|N%&failureMinDevices=N to replace the
 * failure threshold that paused it.
 */
export const resumeRollout: ApiHandler = async (ctx, request) => {
  const id = await rolloutId(ctx, request.params);
  const threshold = request.query.get('failureThreshold');
  const minimum = request.query.get('failureMinDevices');
  let failure;
  try {
    failure = {
      ...(threshold ? { failureThreshold: parseAmount('failureThreshold', threshold) } : {}),
      ...(minimum ? { failureMinDevices: parseAmount('failureMinDevices', minimum).value } : {}),
    };
    if (minimum && minimum.endsWith('%')) throw new RolloutSpecError('failureMinDevices', 'expected a device count, not a percentage');
  } catch (err) {
    if (err instanceof RolloutSpecError) throw new ApiError('invalid_request', err.message, err.field);
    throw err;
  }
  const result = await ctx.rollouts.resume(id, failure);
  ctx.log.info({ rolloutId: id, operator: request.operator.name, ...failure }, 'rollout resumed');
  return controlled(id, result);
};

/** POST /v1/rollouts/{id}/cancel?reason=TEXT */
export const cancelRollout: ApiHandler = async (ctx, request) => {
  const id = await rolloutId(ctx, request.params);
  const result = await ctx.rollouts.cancel(id, reasonOf(request, `cancelled by ${request.operator.name}`));
  ctx.log.info({ rolloutId: id, operator: request.operator.name }, 'rollout cancelled');
  return controlled(id, result);
};
