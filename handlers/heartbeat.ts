import type { HeartbeatMessage } from '../protocol/messages.ts';
import type { HandlerContext } from './context.ts';

/** Renews the presence lease. A lease now held by another session means this connection was replaced. */
export async function handleHeartbeat(ctx: HandlerContext, _message: HeartbeatMessage): Promise<void> {
  const deviceId = ctx.session.deviceId;
  if (!deviceId) return;
  const owned = await ctx.state.renewPresence(deviceId, ctx.session.sessionId, ctx.settings.presenceLeaseMs);
  if (!owned) {
    ctx.log.info('heartbeat from a replaced session');
    ctx.close('session_replaced');
  }
}
