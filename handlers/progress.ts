import type { ProgressMessage } from '../protocol/messages.ts';
import { UPDATE_STATES, type ProgressState } from '../protocol/states.ts';
import type { HandlerContext, Session } from './context.ts';
import { sendError } from './send-error.ts';

/**
 * Records that the device entered a stage of an update, and pushes the update's deadline out. A report that
 * repeats the stage this connection last saw stored (download progress with more bytes, say) changes no
 * state in Redis. It only marks the deadline, which the replica's next flush pushes out, and costs no Redis
 * call of its own. Any other report runs the state script before the next message of the device is handled.
 */
export function handleProgress(ctx: HandlerContext, message: ProgressMessage): Promise<void> | undefined {
  if (!ctx.session.deviceId) return undefined;
  if (repeatsStage(ctx.session, message)) {
    ctx.extendDeadline(message.patchId, message.attempt);
    return undefined;
  }
  if (!concernsSessionPatch(ctx.session, message)) return checkThenReport(ctx, ctx.session.deviceId, message);
  return reportProgress(ctx, ctx.session.deviceId, message);
}

function concernsSessionPatch(session: Session, message: ProgressMessage): boolean {
  return session.offer?.patchId === message.patchId || session.stage?.patchId === message.patchId;
}

/**
 * Handles a report about a patch this connection was not offered. Such a report is usually about a patch
 * the device was never offered, and a plain read of its status settles that far more cheaply than the
 * state script, whose set-up alone costs Redis several microseconds a call. A status that the read finds
 * for this or a later attempt still goes through the script.
 */
async function checkThenReport(ctx: HandlerContext, deviceId: string, message: ProgressMessage): Promise<void> {
  const status = await ctx.state.patchStatus(message.patchId, deviceId);
  if (status === null || message.attempt > status.attempt) {
    sendError(ctx, 'unknown_patch', `${message.patchId} attempt ${message.attempt}`);
    return;
  }
  if (message.attempt < status.attempt) {
    ctx.log.debug({ patchId: message.patchId, attempt: message.attempt, outcome: 'stale' }, 'progress ignored');
    return;
  }
  await reportProgress(ctx, deviceId, message);
}

function repeatsStage(session: Session, message: ProgressMessage): boolean {
  const stage = session.stage;
  return (
    stage !== null &&
    stage.patchId === message.patchId &&
    stage.attempt === message.attempt &&
    UPDATE_STATES.indexOf(message.state) <= UPDATE_STATES.indexOf(stage.state)
  );
}

async function reportProgress(ctx: HandlerContext, deviceId: string, message: ProgressMessage): Promise<void> {
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
  const stored = progressStateOf(result.state);
  ctx.session.stage =
    stored !== null && result.attempt === message.attempt ? { patchId: message.patchId, attempt: message.attempt, state: stored } : null;
  if (result.outcome !== 'ok') {
    ctx.log.debug({ patchId: message.patchId, attempt: message.attempt, outcome: result.outcome }, 'progress ignored');
  }
}

/** Returns the stored state when it is an unfinished stage a device can repeat, else null. */
function progressStateOf(state: string | null): ProgressState | null {
  return state === 'downloading' || state === 'verifying' || state === 'applying' ? state : null;
}
