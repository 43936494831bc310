import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import YAML from 'yaml';
import { CLOSE_CODES, STANDARD_CLOSE_CODES } from './close-codes.ts';
import { DEVICE_ERRORS } from './errors.ts';
import { DEVICE_MESSAGES, PROTOCOL_VERSION, SERVER_MESSAGES } from './messages.ts';

/**
 * Builds the AsyncAPI 3.0 description of device protocol v1 from the TypeBox schemas in messages.ts and
 * writes it to docs/asyncapi.yaml. Run `npm run asyncapi` after changing a schema, an error code or a close
 * code. `npm run asyncapi -- --check` exits 1 when the committed file is out of date.
 */

export const ASYNCAPI_PATH = fileURLToPath(new URL('../docs/asyncapi.yaml', import.meta.url));

type MessageType = keyof typeof DEVICE_MESSAGES | keyof typeof SERVER_MESSAGES;

const PATCH_ID = 'cam-fw-2.4.1-hotfix1.bin';
const SIGNED_URL =
  'https://patches.example.com/fleet-patches/cam-fw-2.4.1-hotfix1.bin' +
  '?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-Signature=5d1c0e7b';

/** One valid example per message type. test/protocol-docs.test.ts checks each against its schema. */
export const MESSAGE_EXAMPLES: Record<MessageType, Record<string, unknown>> = {
  hello: {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    deviceId: 'cam_0042',
    model: 'dome-4k',
    firmware: '2.4.1',
    patches: ['cam-fw-2.4.0.bin'],
    tags: ['lobby'],
  },
  heartbeat: { type: 'heartbeat' },
  progress: { type: 'progress', patchId: PATCH_ID, attempt: 1, state: 'downloading', bytes: 0 },
  result: { type: 'result', patchId: PATCH_ID, attempt: 1, outcome: 'applied' },
  url_request: { type: 'url_request', patchId: PATCH_ID, attempt: 1 },
  welcome: {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    sessionId: '3f2c7a9e-5b1d-4c8e-9a60-2d4f8b1e7c35',
    heartbeatIntervalS: 15,
    serverTime: 1764880000000,
    enrollment: 'accepted',
  },
  offer: {
    type: 'offer',
    patchId: PATCH_ID,
    attempt: 1,
    name: 'Hotfix 1 for firmware 2.4.1',
    size: 1048576,
    sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    version: '2.4.1-hotfix1',
    // The test vector of docs/protocol.md: this manifest signed with the example key shown there.
    signature: 'd4lt0yFhNdUDyFhHgQLoZanXnQtBn9Wl2pxJMkXSkEry/zq/eIEgvXj65gUIZKd+z0iFBSpVxCYxci+pSEz2Ag==',
    url: SIGNED_URL,
    urlExpiresAt: 1764880300000,
  },
  url: { type: 'url', patchId: PATCH_ID, attempt: 1, url: SIGNED_URL, urlExpiresAt: 1764880600000 },
  result_ack: { type: 'result_ack', patchId: PATCH_ID, attempt: 1, state: 'applied' },
  error: {
    type: 'error',
    code: 'unknown_patch',
    message: 'no offer of this patch and attempt was made to this device',
    retryable: false,
    details: 'cam-fw-9.9.9.bin attempt 1',
  },
};

/** Security scheme of the device endpoint: a bearer token on the WebSocket upgrade request. */
const DEVICE_TOKEN_SCHEME = {
  type: 'http',
  scheme: 'bearer',
  bearerFormat: 'JWT',
  description:
    'The device token that an operator issued with `fleet device token ID`, sent as ' +
    '`Authorization: Bearer <token>` on the upgrade request. Firmware treats it as an opaque string. A ' +
    'rejected upgrade gets HTTP 401, 403, 429 or 503 with a JSON body `{"error": code, "message": text}`; ' +
    'docs/protocol.md lists the codes and when to retry.',
};

/** Replies the server sends to a device message. The other device messages get a reply only when they fail. */
const REPLIES: Partial<Record<MessageType, MessageType[]>> = {
  hello: ['welcome', 'error'],
  result: ['result_ack', 'error'],
  url_request: ['url', 'error'],
};

/** Copies a TypeBox schema as plain JSON Schema: JSON.stringify drops TypeBox's symbol keys. */
function plainSchema(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

/** Converts a message type to the operation id suffix: `url_request` → `UrlRequest`. */
function pascalCase(type: string): string {
  return type
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

function channelMessageRef(type: MessageType) {
  return { $ref: `#/channels/device/messages/${type}` };
}

function errorCodeTable(): string {
  const rows = Object.entries(DEVICE_ERRORS).map(
    ([code, error]) => `| \`${code}\` | ${error.retryable ? 'yes' : 'no'} | ${error.description} |`,
  );
  return ['| code | retryable | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

function closeCodeList() {
  const product = Object.entries(CLOSE_CODES).map(([name, close]) => ({
    code: close.code,
    name,
    reconnect: close.reconnect,
    description: close.description,
  }));
  const standard = Object.entries(STANDARD_CLOSE_CODES).map(([code, description]) => ({
    code: Number(code),
    description,
  }));
  return { product, standard };
}

function closeCodeTables(): string {
  const { product, standard } = closeCodeList();
  const productRows = product.map(
    (close) => `| ${close.code} | \`${close.name}\` | ${close.reconnect ? 'yes' : 'no'} | ${close.description} |`,
  );
  const standardRows = standard.map((close) => `| ${close.code} | ${close.description} |`);
  return [
    'Close codes the server sends:',
    '',
    '| code | name | reconnect | meaning |',
    '| --- | --- | --- | --- |',
    ...productRows,
    '',
    'Standard close codes:',
    '',
    '| code | meaning |',
    '| --- | --- |',
    ...standardRows,
  ].join('\n');
}

function componentMessages(): Record<string, unknown> {
  const schemas: [MessageType, TSchema][] = [
    ...(Object.entries(DEVICE_MESSAGES) as [MessageType, TSchema][]),
    ...(Object.entries(SERVER_MESSAGES) as [MessageType, TSchema][]),
  ];
  const messages: Record<string, unknown> = {};
  for (const [type, schema] of schemas) {
    const message: Record<string, unknown> = {
      name: type,
      title: type,
      summary: schema.description,
      contentType: 'application/json',
      payload: plainSchema(schema),
      examples: [{ name: type, payload: MESSAGE_EXAMPLES[type] }],
    };
    if (type === 'error') {
      message.description = `Error codes:\n\n${errorCodeTable()}`;
      message['x-error-codes'] = Object.entries(DEVICE_ERRORS).map(([code, error]) => ({ code, ...error }));
    }
    messages[type] = message;
  }
  return messages;
}

function operations(): Record<string, unknown> {
  const channel = { $ref: '#/channels/device' };
  const result: Record<string, unknown> = {};
  const directions: ['send' | 'receive', MessageType[]][] = [
    ['send', Object.keys(DEVICE_MESSAGES) as MessageType[]],
    ['receive', Object.keys(SERVER_MESSAGES) as MessageType[]],
  ];
  for (const [action, types] of directions) {
    for (const type of types) {
      const operation: Record<string, unknown> = { action, channel, messages: [channelMessageRef(type)] };
      const replies = REPLIES[type];
      if (replies) operation.reply = { channel, messages: replies.map(channelMessageRef) };
      result[`${action}${pascalCase(type)}`] = operation;
    }
  }
  return result;
}

/** Builds the AsyncAPI 3.0 document, written from the device's side: `send` is device → server. */
export function buildAsyncApi(): object {
  const types = [...Object.keys(DEVICE_MESSAGES), ...Object.keys(SERVER_MESSAGES)] as MessageType[];
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Camera fleet device protocol',
      version: String(PROTOCOL_VERSION),
      description:
        'Protocol between a camera and the fleet backend. The camera holds one WebSocket to `/device` and ' +
        'exchanges JSON text frames. This document is written from the camera side: `send` operations are ' +
        'messages the camera sends, `receive` operations are messages the server sends. docs/protocol.md ' +
        'describes the handshake, the update state machine and the retry rules.',
    },
    defaultContentType: 'application/json',
    servers: {
      fleet: {
        host: '{host}',
        protocol: 'ws',
        description: 'A fleet backend replica. Any replica serves any camera.',
        variables: {
          host: { description: 'Host name and port of the fleet backend.', examples: ['fleet.example.com:8080'] },
        },
        security: [{ $ref: '#/components/securitySchemes/deviceToken' }],
      },
    },
    channels: {
      device: {
        address: '/device',
        title: 'Device connection',
        description: `The WebSocket of one camera.\n\n${closeCodeTables()}`,
        messages: Object.fromEntries(types.map((type) => [type, { $ref: `#/components/messages/${type}` }])),
        'x-close-codes': closeCodeList(),
      },
    },
    operations: operations(),
    components: { messages: componentMessages(), securitySchemes: { deviceToken: DEVICE_TOKEN_SCHEME } },
  };
}

/** Renders the document as the YAML text committed in docs/asyncapi.yaml. */
export function renderAsyncApiYaml(): string {
  const document = new YAML.Document(buildAsyncApi(), { aliasDuplicateObjects: false });
  document.commentBefore = ' Generated from protocol/messages.ts by `npm run asyncapi`. Do not edit by hand.';
  return document.toString({ lineWidth: 0 });
}

function readCommitted(): string | null {
  try {
    return readFileSync(ASYNCAPI_PATH, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function main(args: string[]): number {
  const shownPath = relative(process.cwd(), ASYNCAPI_PATH);
  const unknown = args.filter((arg) => arg !== '--check');
  if (unknown.length > 0) {
    console.error(`unknown argument ${unknown[0]}. Usage: tsx protocol/asyncapi.ts [--check]`);
    return 2;
  }

  const expected = renderAsyncApiYaml();
  if (args.includes('--check')) {
    const committed = readCommitted();
    if (committed === expected) {
      console.log(`${shownPath} is up to date`);
      return 0;
    }
    const problem = committed === null ? 'is missing' : 'is out of date';
    console.error(`${shownPath} ${problem}: run \`npm run asyncapi\` and commit the result`);
    return 1;
  }

  writeFileSync(ASYNCAPI_PATH, expected);
  console.log(`wrote ${shownPath}`);
  return 0;
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && existsSync(entry) && realpathSync(entry) === fileURLToPath(import.meta.url);
}

if (isEntryPoint()) {
  process.exitCode = main(process.argv.slice(2));
}
