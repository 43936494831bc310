import type { HandlerContext } from './context.ts';

/**
 * What offerNext did: `offered` a new attempt, `resumed` the attempt in flight, `waiting` the device must wait
 * its turn (see WaitReason), `none` nothing to offer, `store_down` the patch store is unreachable, `skipped`
 * no device is bound or the claimed patch has no record.
 */
export type OfferOutcome = 'offered' | 'resumed' | 'waiting' | 'none' | 'store_down' | 'skipped';

/**
 * Offers the device the next patch it lacks, if any. The claim in Redis is atomic and idempotent: a device
 * that already has an update in flight gets the same patch and attempt again, with a fresh URL, so calling
 * this twice never starts two updates. A fan-out passes `logEach` false, which logs the offer at debug
 * level, and logs one summary line for all its devices.
 */
export async function offerNext(ctx: HandlerContext, logEach = true): Promise<OfferOutcome> {
  const deviceId = ctx.session.deviceId;
  if (!deviceId) return 'skipped';
  if (!ctx.patchStore.reachable) {
    // A download would fail now. The runtime offers again to every device once the store answers.
    ctx.session.offer = null;
    return 'store_down';
  }
  const claim = await ctx.state.claimOffer(deviceId, ctx.settings.updateTimeoutMs, ctx.settings.maxAttempts);
  if (claim.kind !== 'offer') {
    ctx.session.offer = null;
    return claim.kind === 'wait' ? 'waiting' : 'none';
  }
  const patch = await ctx.patches.get(claim.patchId);
  if (!patch || patch.state !== 'ready') {
    // The claim only picks ready patches, so this means the record vanished between two calls.
    ctx.log.error({ patchId: claim.patchId }, 'claimed patch has no metadata');
    return 'skipped';
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
  const fields = { patchId: patch.id, attempt: claim.attempt, resumed: claim.resumed };
  if (logEach) ctx.log.info(fields, 'offer sent');
  else ctx.log.debug(fields, 'offer sent');
  return claim.resumed ? 'resumed' : 'offered';
}
