/**
 * Error codes of the operator HTTP API. Codes are stable and never reused; docs/operators.md lists them and
 * a test keeps the two in step. Every error body is `{"error": {"code", "message", "value"?}}`.
 */
export const API_ERRORS = {
  unauthorized: { status: 401, description: 'No operator token, or one that is unknown or revoked.' },
  forbidden: { status: 403, description: 'The token is valid but its role may not do this (read-only token).' },
  not_found: { status: 404, description: 'No such route, device or patch.' },
  method_not_allowed: { status: 405, description: 'The route exists but not with this method.' },
  invalid_request: { status: 400, description: 'A parameter or the body is malformed; `value` shows it.' },
  invalid_cursor: { status: 400, description: 'The pagination cursor is not one this API returned.' },
  invalid_patch_id: { status: 400, description: 'The patch id breaks the id grammar.' },
  invalid_device_id: { status: 400, description: 'The device id breaks the id grammar.' },
  length_required: { status: 411, description: 'An upload needs a Content-Length header.' },
  payload_too_large: { status: 413, description: 'The body is larger than the limit for this route.' },
  unsupported_media_type: { status: 415, description: 'The Content-Type is not the one this route takes.' },
  patch_exists: { status: 409, description: 'A patch with this id exists; patch content never changes.' },
  signature_invalid: { status: 400, description: 'The patch signature does not verify with the fleet key.' },
  signature_required: { status: 400, description: 'This fleet requires signed patches and none was sent.' },
  rollout_exists: { status: 409, description: 'The patch has a rollout that is not cancelled; cancel it before creating another.' },
  rollout_cancelled: { status: 409, description: 'The rollout is cancelled and cannot be paused or resumed.' },
  internal: { status: 500, description: 'The server failed; the log has the details.' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly value?: unknown,
  ) {
    super(message);
    this.status = API_ERRORS[code].status;
  }

  toBody(): { error: { code: string; message: string; value?: unknown } } {
    return { error: { code: this.code, message: this.message, ...(this.value === undefined ? {} : { value: this.value }) } };
  }
}
