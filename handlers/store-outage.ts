import type { ResultMessage } from '../protocol/messages.ts';
import type { HandlerContext } from './context.ts';
import { offerNext } from './offer-next.ts';

/**
 * A `download_failed` that arrives this long after the replica last found the patch store unreachable is
 * still put down to the outage. NOTE: a guess that covers a device's download retries (a few seconds for the
 * simulator); firmware that retries for longer reports after the window and is charged the attempt.
 */
export const STORE_OUTAGE_GRACE_MS = 30_000;
/** Time the handler gives the store to answer when the readiness checks saw no outage. */
const PING_TIMEOUT_MS = 2000;

/** Tells whether the patch store is down now or was shortly before, asking it when the checks saw nothing. */
async function storeWasDown(ctx: HandlerContext): Promise<boolean> {
  if (ctx.patchStore.unreachableWithin(STORE_OUTAGE_GRACE_MS)) return true;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
  });
  try {
    await Promise.race([ctx.bucket.ping(), timeout]);
    return false;
  } catch {
    return true;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Handles a `download_failed` result that the patch store's outage caused: the attempt is acknowledged but
 * not counted as a device failure, and the next attempt is offered once the store answers. Returns false,
 * and changes nothing, when the store was up or the result is not about the device's open attempt; the
 * caller then records the result as usual.
 */
export async function waiveStoreOutageFailure(ctx: HandlerContext, message: ResultMessage): Promise<boolean> {
  const deviceId = ctx.session.deviceId;
  if (!deviceId || message.outcome !== 'failed' || message.reason !== 'download_failed') return false;
  if (!(await storeWasDown(ctx))) return false;
  const waived = await ctx.state.waiveAttempt({
    deviceId,
    patchId: message.patchId,
    attempt: message.attempt,
    timeoutMs: ctx.settings.updateTimeoutMs,
    detail: `not counted, the patch store was unreachable: ${message.detail ?? 'download_failed'}`,
  });
  if (!waived.waived) return false;
  ctx.send({ type: 'result_ack', patchId: message.patchId, attempt: message.attempt, state: 'offered' });
  ctx.log.info(
    { patchId: message.patchId, attempt: message.attempt, nextAttempt: waived.attempt },
    'download failed while the patch store was unreachable; attempt not counted',
  );
  ctx.session.offer = null;
  // While the store is down the offer waits; the runtime offers to every device when it is back.
  await offerNext(ctx);
  return true;
}
