import type { HeartbeatMessage } from '../protocol/messages.ts';
import type { HandlerContext } from './context.ts';

/**
 * Keeps the presence lease alive. The renewal is coalesced with other heartbeats of this replica; a session
 * found replaced by a newer connection of the same device is closed by the runtime with `session_replaced`.
 */
export function handleHeartbeat(ctx: HandlerContext, _message: HeartbeatMessage): undefined {
  ctx.markAlive();
  return undefined;
}
