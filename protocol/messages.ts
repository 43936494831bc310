import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { DEVICE_ERROR_CODES } from './errors.ts';
import { PROGRESS_STATES, UPDATE_STATES } from './states.ts';
import { DeviceId, PatchId, Sha256Hex, Tag } from './names.ts';

/**
 * Device protocol v1: one schema per message. These schemas are the single source of the TypeScript types,
 * of the validation the runtime runs before dispatch, and of the AsyncAPI document in docs/.
 * Every object rejects unknown fields, so a typo in firmware fails loudly instead of being ignored.
 */

export const PROTOCOL_VERSION = 1;

const strict = { additionalProperties: false } as const;
const Attempt = Type.Integer({ minimum: 1, maximum: 1000, description: 'Attempt number from the offer.' });
const EpochMs = Type.Integer({ minimum: 0, description: 'Milliseconds since the Unix epoch, server clock.' });
const ShortText = Type.String({ maxLength: 512 });

// Device → server

export const Hello = Type.Object(
  {
    type: Type.Literal('hello'),
    protocol: Type.Literal(PROTOCOL_VERSION),
    deviceId: DeviceId,
    model: Type.String({ minLength: 1, maxLength: 64, description: 'Hardware model, e.g. "dome-4k".' }),
    firmware: Type.String({ minLength: 1, maxLength: 64, description: 'Installed firmware version.' }),
    patches: Type.Array(PatchId, {
      maxItems: 1024,
      description: 'Ids of the patches the device has already applied.',
    }),
    tags: Type.Optional(
      Type.Array(Tag, {
        maxItems: 32,
        description: 'Tags the device reports about itself, such as its site. Rollouts can target them.',
      }),
    ),
  },
  { ...strict, title: 'hello', description: 'First message on every connection: who the device is.' },
);

export const Heartbeat = Type.Object(
  { type: Type.Literal('heartbeat') },
  { ...strict, title: 'heartbeat', description: 'Keeps the presence lease alive. Send every heartbeatIntervalS.' },
);

export const Progress = Type.Object(
  {
    type: Type.Literal('progress'),
    patchId: PatchId,
    attempt: Attempt,
    state: Type.Union(PROGRESS_STATES.map((s) => Type.Literal(s)), { description: 'Stage the device entered.' }),
    bytes: Type.Optional(Type.Integer({ minimum: 0, description: 'Bytes downloaded so far.' })),
  },
  { ...strict, title: 'progress', description: 'The device moved to a new stage of an update.' },
);

export const FAILURE_REASONS = [
  'download_failed',
  'checksum_mismatch',
  'signature_invalid',
  'apply_failed',
  'rejected',
  'artifact_missing',
] as const;

export const Result = Type.Object(
  {
    type: Type.Literal('result'),
    patchId: PatchId,
    attempt: Attempt,
    outcome: Type.Union([Type.Literal('applied'), Type.Literal('failed')]),
    reason: Type.Optional(
      Type.Union(FAILURE_REASONS.map((r) => Type.Literal(r)), { description: 'Why it failed; required when failed.' }),
    ),
    detail: Type.Optional(ShortText),
  },
  { ...strict, title: 'result', description: 'Final outcome of an attempt. Send again until the server acks it.' },
);

export const UrlRequest = Type.Object(
  { type: Type.Literal('url_request'), patchId: PatchId, attempt: Attempt },
  { ...strict, title: 'url_request', description: 'Asks for a fresh signed URL, e.g. after the old one expired.' },
);

export const DEVICE_MESSAGES = {
  hello: Hello,
  heartbeat: Heartbeat,
  progress: Progress,
  result: Result,
  url_request: UrlRequest,
} as const;

export type DeviceMessageType = keyof typeof DEVICE_MESSAGES;
export type HelloMessage = Static<typeof Hello>;
export type HeartbeatMessage = Static<typeof Heartbeat>;
export type ProgressMessage = Static<typeof Progress>;
export type ResultMessage = Static<typeof Result>;
export type UrlRequestMessage = Static<typeof UrlRequest>;
export type DeviceMessage = { [K in DeviceMessageType]: Static<(typeof DEVICE_MESSAGES)[K]> }[DeviceMessageType];
export type DeviceMessageOf<K extends DeviceMessageType> = Static<(typeof DEVICE_MESSAGES)[K]>;

// Server → device

export const Welcome = Type.Object(
  {
    type: Type.Literal('welcome'),
    protocol: Type.Literal(PROTOCOL_VERSION),
    sessionId: Type.String({ description: 'Id of this connection; appears in server logs.' }),
    heartbeatIntervalS: Type.Integer({ minimum: 1, description: 'How often to send `heartbeat`.' }),
    serverTime: EpochMs,
    enrollment: Type.Union([Type.Literal('accepted'), Type.Literal('pending')], {
      description: 'A pending device stays connected but gets no offers until an operator accepts it.',
    }),
  },
  { ...strict, title: 'welcome', description: 'Reply to `hello`: the device is registered.' },
);

export const Offer = Type.Object(
  {
    type: Type.Literal('offer'),
    patchId: PatchId,
    attempt: Attempt,
    name: Type.String({ description: 'Human-readable patch name.' }),
    size: Type.Integer({ minimum: 0, description: 'Size of the patch file in bytes.' }),
    sha256: Sha256Hex,
    version: Type.String({ description: 'Version of the patch, part of the signed manifest.' }),
    signature: Type.Optional(
      Type.String({
        description: 'Base64 Ed25519 signature of the canonical manifest (v, id, name, version, size, sha256) ' +
          'by the fleet signing key. Absent only when the fleet does not require signatures.',
      }),
    ),
    url: Type.String({ description: 'Signed HTTP GET URL of the patch file. Supports Range requests.' }),
    urlExpiresAt: EpochMs,
  },
  { ...strict, title: 'offer', description: 'The device should download, verify and apply this patch.' },
);

export const FreshUrl = Type.Object(
  {
    type: Type.Literal('url'),
    patchId: PatchId,
    attempt: Attempt,
    url: Type.String(),
    urlExpiresAt: EpochMs,
  },
  { ...strict, title: 'url', description: 'Reply to `url_request`: a newly signed URL for the same patch.' },
);

export const ResultAck = Type.Object(
  {
    type: Type.Literal('result_ack'),
    patchId: PatchId,
    attempt: Attempt,
    state: Type.Union(UPDATE_STATES.map((s) => Type.Literal(s)), {
      description: 'State the server holds for this patch after the result, which may differ for a late result.',
    }),
  },
  { ...strict, title: 'result_ack', description: 'The result is stored; the device can stop sending it.' },
);

export const ErrorMessage = Type.Object(
  {
    type: Type.Literal('error'),
    code: Type.Union(DEVICE_ERROR_CODES.map((c) => Type.Literal(c))),
    message: Type.String(),
    retryable: Type.Boolean(),
    details: Type.Optional(Type.String()),
  },
  { ...strict, title: 'error', description: 'The server could not act on a message. See the error code table.' },
);

export const SERVER_MESSAGES = {
  welcome: Welcome,
  offer: Offer,
  url: FreshUrl,
  result_ack: ResultAck,
  error: ErrorMessage,
} as const;

export type ServerMessage = { [K in keyof typeof SERVER_MESSAGES]: Static<(typeof SERVER_MESSAGES)[K]> }[
  keyof typeof SERVER_MESSAGES
];
export type OfferMessage = Static<typeof Offer>;
export type WelcomeMessage = Static<typeof Welcome>;

export const ALL_SCHEMAS: Record<string, TSchema> = { ...DEVICE_MESSAGES, ...SERVER_MESSAGES };
