import { DEVICE_ERRORS, type DeviceErrorCode } from '../protocol/errors.ts';
import type { HandlerContext } from './context.ts';

const MESSAGES: Record<DeviceErrorCode, string> = {
  invalid_json: 'the frame is not valid JSON',
  binary_not_supported: 'binary frames are not supported; send JSON text frames',
  invalid_message: 'the message does not match its schema',
  message_too_large: 'the frame is larger than the maximum payload length',
  unknown_type: 'unknown message type',
  hello_required: 'send hello before any other message',
  device_id_mismatch: 'deviceId differs from the device id in the token',
  rate_limited: 'too many messages; this one was not handled, send it again later',
  unknown_patch: 'no offer of this patch and attempt was made to this device',
  patch_unavailable: 'the patch file cannot be reached right now; ask again later',
  internal: 'the server failed to handle the message; send it again later',
};

/** Sends an `error` message with the catalogue's retryable flag. */
export function sendError(ctx: Pick<HandlerContext, 'send'>, code: DeviceErrorCode, details?: string): void {
  ctx.send({
    type: 'error',
    code,
    message: MESSAGES[code],
    retryable: DEVICE_ERRORS[code].retryable,
    ...(details === undefined ? {} : { details }),
  });
}
