import type { HandlerContext } from './context.ts';

/**
 * Offers the device the next patch it lacks, if any. The claim in Redis is atomic and idempotent: a device
 * that already has an update in flight gets the same patch and attempt again, with a fresh URL, so calling
 * this twice never starts two updates.
 */
export async function offerNext(ctx: HandlerContext): Promise<void> {
  const deviceId = ctx.session.deviceId;
  if (!deviceId) return;
  if (!ctx.patchStore.reachable) {
    // A download would fail now. The runtime offers again to every device once the store answers.
    ctx.session.offer = null;
    return;
  }
  const claim = await ctx.state.claimOffer(deviceId, ctx.settings.updateTimeoutMs, ctx.settings.maxAttempts);
  if (claim.kind !== 'offer') {
    ctx.session.offer = null;
    return;
  }
  const patch = await ctx.patches.get(claim.patchId);
  if (!patch || patch.state !== 'ready') {
    // The claim only picks ready patches, so this means the record vanished between two calls.
    ctx.log.error({ patchId: claim.patchId }, 'claimed patch has no metadata');
    return;
  }
  const signed = ctx.bucket.signDownload(patch.id, ctx.settings.urlTtlS);
  ctx.session.offer = { patchId: patch.id, attempt: claim.attempt };
  ctx.send({
    type: 'offer',
    patchId: patch.id,
    attempt: claim.attempt,
    name: patch.name,
    size: patch.size,
    sha256: patch.sha256,
    version: patch.version,
    ...(patch.signature ? { signature: patch.signature } : {}),
    url: signed.url,
    urlExpiresAt: signed.expiresAt,
  });
  ctx.log.info({ patchId: patch.id, attempt: claim.attempt, resumed: claim.resumed }, 'offer sent');
}
