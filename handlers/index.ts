import type { DeviceMessageOf, DeviceMessageType } from '../protocol/messages.ts';
import type { HandlerContext } from './context.ts';
import { handleHeartbeat } from './heartbeat.ts';
import { handleHello } from './hello.ts';
import { handleProgress } from './progress.ts';
import { handleResult } from './result.ts';
import { handleUrlRequest } from './url-request.ts';

/** A handler returns undefined when it finished without waiting for anything, which spares a promise per message. */
export type Handler<K extends DeviceMessageType> = (ctx: HandlerContext, message: DeviceMessageOf<K>) => Promise<void> | undefined;

/** Message type → handler. The runtime validates a message against its schema before looking it up here. */
export const HANDLERS: { [K in DeviceMessageType]: Handler<K> } = {
  hello: handleHello,
  heartbeat: handleHeartbeat,
  progress: handleProgress,
  result: handleResult,
  url_request: handleUrlRequest,
};

export { offerNext, type OfferOutcome } from './offer-next.ts';
export type { HandlerContext, HandlerSettings, Session, PatchLookup } from './context.ts';
