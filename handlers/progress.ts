import type { ProgressMessage } from '../protocol/messages.ts';
import type { HandlerContext } from './context.ts';
import { sendError } from './send-error.ts';

/** Records that the device entered a stage of an update, and pushes the update's deadline out. */
export async function handleProgress(ctx: HandlerContext, message: ProgressMessage): Promise<void> {
  const deviceId = ctx.session.deviceId;
  if (!deviceId) return;
  const result = await ctx.state.reportState({
    deviceId,
    patchId: message.patchId,
    attempt: message.attempt,
    state: message.state,
    timeoutMs: ctx.settings.updateTimeoutMs,
    maxAttempts: ctx.settings.maxAttempts,
  });
  if (result.outcome === 'unknown') {
    sendError(ctx, 'unknown_patch', `${message.patchId} attempt ${message.attempt}`);
    return;
  }
  if (result.outcome !== 'ok') {
    ctx.log.debug({ patchId: message.patchId, attempt: message.attempt, outcome: result.outcome }, 'progress ignored');
  }
}
