import { PROTOCOL_VERSION, type HelloMessage } from '../protocol/messages.ts';
import type { HandlerContext } from './context.ts';
import { offerNext } from './offer-next.ts';
import { sendError } from './send-error.ts';

/** Registers the device, takes its presence lease, welcomes it and offers the first patch it lacks. */
export async function handleHello(ctx: HandlerContext, message: HelloMessage): Promise<void> {
  if (message.deviceId !== ctx.session.authenticatedDeviceId) {
    ctx.log.warn({ claimed: message.deviceId }, 'hello claims another device id than the token');
    sendError(ctx, 'device_id_mismatch', `token is for ${ctx.session.authenticatedDeviceId}`);
    ctx.close('unauthorized');
    return;
  }
  const { previousSession, isNew, enrollment } = await ctx.state.registerDevice({
    deviceId: message.deviceId,
    model: message.model,
    firmware: message.firmware,
    sessionId: ctx.session.sessionId,
    leaseMs: ctx.settings.presenceLeaseMs,
    replicaId: ctx.settings.replicaId,
    applied: message.patches,
    ...(message.tags ? { tags: message.tags } : {}),
    newEnrollment: ctx.settings.security.enrollment === 'auto' ? 'pending' : 'accepted',
  });
  const replaced = previousSession !== null && previousSession !== ctx.session.sessionId ? previousSession : null;
  ctx.bindDevice(message.deviceId, replaced);
  ctx.log.info({ isNew, enrollment, replacedSession: replaced, reported: message.patches.length }, 'device said hello');
  ctx.send({
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    sessionId: ctx.session.sessionId,
    heartbeatIntervalS: ctx.settings.heartbeatIntervalS,
    serverTime: ctx.now(),
    enrollment,
  });
  await offerNext(ctx);
}
