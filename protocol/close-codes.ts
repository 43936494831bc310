/**
 * WebSocket close codes the server uses. Codes 4000-4099 mean "reconnect with backoff" and 4100-4199 mean
 * "do not reconnect until something changes". docs/protocol.md lists the same table, and a test fails when the
 * two disagree.
 */
export const CLOSE_CODES = {
  going_away: {
    code: 4000,
    reconnect: true,
    description: 'The replica is shutting down. Reconnect after a random delay; another replica will serve you.',
  },
  hello_timeout: {
    code: 4001,
    reconnect: true,
    description: 'No valid `hello` arrived within the hello timeout after the connection opened.',
  },
  backpressure: {
    code: 4002,
    reconnect: true,
    description: 'The device read too slowly and the messages queued for it passed the limit. Nothing is lost: ' +
      'offers in progress are sent again after the reconnect.',
  },
  internal_error: {
    code: 4003,
    reconnect: true,
    description: 'The replica hit an internal error it could not recover from on this connection.',
  },
  session_replaced: {
    code: 4100,
    reconnect: false,
    description: 'A newer connection with the same device id took over. This connection must not reconnect.',
  },
  unauthorized: {
    code: 4102,
    reconnect: false,
    description: 'The device token was revoked, or the device claimed another id than its token. Get a new ' +
      'token before reconnecting.',
  },
  too_many_errors: {
    code: 4101,
    reconnect: false,
    description: 'The device sent too many invalid messages in a row. Fix the firmware before reconnecting.',
  },
} as const satisfies Record<string, { code: number; reconnect: boolean; description: string }>;

export type CloseReason = keyof typeof CLOSE_CODES;

/**
 * Codes that uWebSockets.js or the WebSocket standard produce on their own; listed for firmware authors.
 * 1006 is never sent on the wire: clients report it when the TCP connection dropped without a close frame.
 */
export const STANDARD_CLOSE_CODES = {
  1000: 'Normal closure.',
  1006: 'Abnormal closure: the connection dropped without a close frame, for example after a frame larger ' +
    'than four times the maximum payload length. Reconnect with backoff.',
} as const;
