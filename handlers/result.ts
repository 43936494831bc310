import type { ResultMessage } from '../protocol/messages.ts';
import { TERMINAL_STATES } from '../protocol/states.ts';
import type { HandlerContext } from './context.ts';
import { offerNext } from './offer-next.ts';
import { sendError } from './send-error.ts';

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
  const detail = message.outcome === 'failed' ? [message.reason, message.detail].filter(Boolean).join(': ') : '';
  const result = await ctx.state.reportState({
    deviceId,
    patchId: message.patchId,
    attempt: message.attempt,
    state: message.outcome,
    timeoutMs: ctx.settings.updateTimeoutMs,
    detail,
  });
  if (result.outcome === 'unknown' || result.state === null) {
    sendError(ctx, 'unknown_patch', `${message.patchId} attempt ${message.attempt}`);
    return;
  }
  ctx.send({ type: 'result_ack', patchId: message.patchId, attempt: message.attempt, state: result.state });
  const log = { patchId: message.patchId, attempt: message.attempt, outcome: result.outcome, state: result.state };
  if (message.outcome === 'failed') ctx.log.warn({ ...log, reason: detail }, 'device failed to apply patch');
  else ctx.log.info(log, 'result recorded');

  const offer = ctx.session.offer;
  const finished = offer?.patchId === message.patchId && TERMINAL_STATES.includes(result.state);
  if (finished || offer === null) await offerNext(ctx);
}
