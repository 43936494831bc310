/**
 * Error codes the server sends to devices in `error` messages. Codes are stable: a retired code is never
 * reused. `retryable` tells firmware whether sending the same message again later can succeed.
 * docs/protocol.md lists the same table, and a test fails when the two disagree.
 */
export const DEVICE_ERRORS = {
  invalid_json: {
    retryable: false,
    description: 'The text frame is not valid JSON. The connection stays open.',
  },
  binary_not_supported: {
    retryable: false,
    description: 'The frame is binary. Protocol v1 uses text frames only. The connection stays open.',
  },
  invalid_message: {
    retryable: false,
    description: 'The message does not match the schema of its type; `details` names the offending field.',
  },
  message_too_large: {
    retryable: false,
    description: 'The frame is larger than the maximum payload length. The connection stays open; frames ' +
      'above four times that length make the server drop the connection without a close frame (1006).',
  },
  unknown_type: {
    retryable: false,
    description: 'The `type` field names no message that devices may send.',
  },
  hello_required: {
    retryable: true,
    description: 'A message other than `hello` arrived before the `hello`. Send `hello` first.',
  },
  device_id_mismatch: {
    retryable: false,
    description: 'The `deviceId` in `hello` differs from the subject of the token the connection was opened ' +
      'with. The server closes the connection with 4102.',
  },
  rate_limited: {
    retryable: true,
    description: 'The device sent messages faster than its rate limit; this message was not handled. Send it ' +
      'again after a short delay.',
  },
  unknown_patch: {
    retryable: false,
    description: 'The message names a patch that this device was never offered.',
  },
  patch_unavailable: {
    retryable: true,
    description: 'The patch file cannot be reached in the bucket right now. Ask again with `url_request` later.',
  },
  internal: {
    retryable: true,
    description: 'The server failed to handle the message. Send it again after a short delay.',
  },
} as const satisfies Record<string, { retryable: boolean; description: string }>;

export type DeviceErrorCode = keyof typeof DEVICE_ERRORS;
export const DEVICE_ERROR_CODES = Object.keys(DEVICE_ERRORS) as DeviceErrorCode[];
