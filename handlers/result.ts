import type { ResultMessage } from '../protocol/messages.ts';
import { TERMINAL_STATES } from '../protocol/states.ts';
import type { HandlerContext } from './context.ts';
import { offerNext } from './offer-next.ts';
import { sendError } from './send-error.ts';
import { waiveStoreOutageFailure } from './store-outage.ts';

/**
 * Records the outcome of an attempt and acknowledges it. A duplicate or late result is acknowledged with the
 * state the server holds, so the device stops resending it, and counts nothing.
 */
export async function handleResult(ctx: HandlerContext, message: ResultMessage): Promise<void> {
  const deviceId = ctx.session.deviceId;
  if (!deviceId) return;
  if (message.outcome === 'failed' && message.reason === undefined) {
    sendError(ctx, 'invalid_message', '/reason: required when outcome is failed');
    return;
  }
  if (await waiveStoreOutageFailure(ctx, message)) return;
  const detail = message.outcome === 'failed' ? [message.reason, message.detail].filter(Boolean).join(': ') : '';
  const result = await ctx.state.reportState({
    deviceId,
    patchId: message.patchId,
    attempt: message.attempt,
    state: message.outcome,
    timeoutMs: ctx.settings.updateTimeoutMs,
    detail,
    ...(message.outcome === 'failed' && message.reason ? { reason: message.reason } : {}),
    maxAttempts: ctx.settings.maxAttempts,
  });
  if (result.outcome === 'unknown' || result.state === null) {
    sendError(ctx, 'unknown_patch', `${message.patchId} attempt ${message.attempt}`);
    return;
  }
  ctx.send({ type: 'result_ack', patchId: message.patchId, attempt: message.attempt, state: result.state });
  const log = { patchId: message.patchId, attempt: message.attempt, outcome: result.outcome, state: result.state };
  if (message.outcome === 'failed') ctx.log.warn({ ...log, reason: detail }, 'device failed to apply patch');
  else ctx.log.info(log, 'result recorded');
  if (result.rolloutPaused) ctx.log.warn({ patchId: message.patchId, reason: result.rolloutPaused }, 'rollout paused');
  if (message.outcome === 'failed' && message.reason === 'artifact_missing' && result.outcome === 'ok') {
    await checkArtifact(ctx, message.patchId);
  }

  const offer = ctx.session.offer;
  const finished = offer?.patchId === message.patchId && TERMINAL_STATES.includes(result.state);
  if (finished || offer === null) await offerNext(ctx);
}

/**
 * Asks the bucket whether a patch that a device could not find is really gone. When it is, the patch is
 * marked missing, so nobody is offered it again and the devices its rollout targets fail with
 * artifact_missing at once. One device's report alone never changes the catalog.
 */
async function checkArtifact(ctx: HandlerContext, patchId: string): Promise<void> {
  try {
    if (await ctx.bucket.head(patchId)) return;
    if (await ctx.state.markPatchRemoved(patchId)) ctx.log.warn({ patchId }, 'patch file is gone from the bucket, marked missing');
  } catch (err) {
    ctx.log.error({ err, patchId }, 'cannot check whether the patch file is in the bucket');
  }
}
