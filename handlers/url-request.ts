import type { UrlRequestMessage } from '../protocol/messages.ts';
import type { HandlerContext } from './context.ts';
import { sendError } from './send-error.ts';

/** Signs a fresh download URL for the update the device is working on. */
export async function handleUrlRequest(ctx: HandlerContext, message: UrlRequestMessage): Promise<void> {
  const deviceId = ctx.session.deviceId;
  if (!deviceId) return;
  const status = await ctx.state.patchStatus(message.patchId, deviceId);
  if (!status || status.attempt !== message.attempt) {
    sendError(ctx, 'unknown_patch', `${message.patchId} attempt ${message.attempt}`);
    return;
  }
  const patch = await ctx.patches.get(message.patchId);
  if (!patch || patch.state !== 'ready') {
    sendError(ctx, 'patch_unavailable', message.patchId);
    return;
  }
  const signed = ctx.bucket.signDownload(patch.id, ctx.settings.urlTtlS);
  ctx.send({
    type: 'url',
    patchId: patch.id,
    attempt: message.attempt,
    url: signed.url,
    urlExpiresAt: signed.expiresAt,
  });
}
