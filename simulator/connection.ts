import type { Static } from '@sinclair/typebox';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { CLOSE_CODES } from '../protocol/close-codes.ts';
import type { DeviceMessage, HelloMessage, ServerMessage, Welcome } from '../protocol/messages.ts';
import { Backoff } from './backoff.ts';
import type { CameraBehaviour } from './options.ts';
import { parseServerMessage } from './server-messages.ts';
import { readUpgradeRejection } from './upgrade-rejection.ts';

export type WelcomeMessage = Static<typeof Welcome>;

export type ConnectionState = 'idle' | 'connecting' | 'online' | 'waiting' | 'stopped';

export interface CloseInfo {
  code: number;
  reason: string;
  wasOnline: boolean;
  /** Delay until the next connect, or null when the connection will not be opened again. */
  reconnectInMs: number | null;
}

/** Callbacks through which the connection hands protocol events to the camera. */
export interface ConnectionHandlers {
  /** Builds the `hello` for a new connection. Called once per connection, right after it opens. */
  hello(): HelloMessage;
  onWelcome(welcome: WelcomeMessage): void;
  /** Every valid server message other than `welcome`. */
  onMessage(message: ServerMessage): void;
  onInvalidMessage(details: string): void;
  onClose(info: CloseInfo): void;
  /** The server closed with a 4100-4199 code, which forbids reconnecting. */
  onStopped(closeCode: number): void;
}

/**
 * Close codes 4100-4199 tell the device not to reconnect, and so do HTTP 401 and 403 on the upgrade (a bad,
 * revoked or unprovisioned token), which are reported in place of a close code. Every other code, 1006,
 * HTTP 429 and 503 included, means reconnect.
 */
function forbidsReconnect(code: number): boolean {
  return (code >= 4100 && code <= 4199) || code === 401 || code === 403;
}

function closeCodeName(code: number): string | undefined {
  return Object.entries(CLOSE_CODES).find(([, entry]) => entry.code === code)?.[0];
}

/**
 * The WebSocket of one camera: sends `hello`, waits for `welcome`, sends heartbeats, and reconnects with
 * full-jitter backoff until the server forbids it or `stop()` is called.
 */
export class CameraConnection {
  state: ConnectionState = 'idle';
  /** Connections that reached `welcome`. */
  connections = 0;
  lastCloseCode: number | null = null;

  private socket: WebSocket | null = null;
  private socketClosed: Promise<void> = Promise.resolve();
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private online = new AbortController();
  /** True between `welcome` and the close of the same socket. `state` turns to stopped earlier on `stop()`. */
  private welcomed = false;

  /** HTTP status of a rejected upgrade on the current socket, reported in place of the close code. */
  private rejectedStatus: number | null = null;
  /** `CODE: MESSAGE` from the body of a rejected upgrade, reported in place of the close reason. */
  private rejectedReason = '';

  constructor(
    private readonly url: string,
    private readonly token: string | undefined,
    private readonly behaviour: CameraBehaviour,
    private readonly handlers: ConnectionHandlers,
    private readonly log: Logger,
  ) {
    this.backoff = new Backoff(behaviour.backoffBaseMs, behaviour.backoffCapMs, behaviour.random);
    this.online.abort();
  }

  /** Aborts when the current connection closes. Already aborted while the camera is offline. */
  get onlineSignal(): AbortSignal {
    return this.online.signal;
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.connect();
  }

  /** Sends a message if the socket is open. Returns false when it was not sent. */
  send(message: DeviceMessage): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** Drops the TCP connection without a close frame, as a lost network would. The camera then reconnects. */
  drop(): void {
    this.online.abort(new Error('connection dropped'));
    this.socket?.terminate();
  }

  /** Closes the socket with code 1000 and cancels every timer. Resolves when the socket is closed. */
  async stop(): Promise<void> {
    this.state = 'stopped';
    clearTimeout(this.reconnectTimer);
    this.clearConnectionTimers();
    const socket = this.socket;
    if (socket) {
      if (socket.readyState === WebSocket.OPEN) {
        socket.close(1000, 'camera stopped');
        this.closeTimer = setTimeout(() => socket.terminate(), this.behaviour.closeTimeoutMs);
      } else {
        socket.terminate();
      }
    }
    await this.socketClosed;
  }

  private connect(): void {
    this.state = 'connecting';
    const socket = new WebSocket(this.url, {
      handshakeTimeout: this.behaviour.welcomeTimeoutMs,
      perMessageDeflate: false,
      ...(this.token ? { headers: { authorization: `Bearer ${this.token}` } } : {}),
    });
    this.socket = socket;
    this.rejectedStatus = null;
    this.rejectedReason = '';
    socket.on('unexpected-response', (request, response) => {
      this.rejectedStatus = response.statusCode ?? 0;
      // The close that follows the terminate reports the rejection, so the body is read before it.
      void readUpgradeRejection(response, this.behaviour.closeTimeoutMs).then((rejection) => {
        this.rejectedReason = rejection.error ? `${rejection.error}: ${rejection.message ?? ''}` : '';
        this.log.warn(rejection, 'server rejected the WebSocket upgrade');
        request.destroy();
        socket.terminate();
      });
    });
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));

    socket.on('open', () => {
      this.welcomeTimer = setTimeout(() => {
        this.log.warn({ timeoutMs: this.behaviour.welcomeTimeoutMs }, 'no welcome in time, reconnecting');
        socket.terminate();
      }, this.behaviour.welcomeTimeoutMs);
      socket.send(JSON.stringify(this.handlers.hello()));
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        this.handlers.onInvalidMessage('binary frame; protocol v1 uses text frames only');
        return;
      }
      this.receive(data.toString());
    });
    socket.on('error', (err) => {
      // ws emits `close` after every `error`, and the close handler decides about reconnecting.
      this.log.debug({ err }, 'websocket error');
    });
    socket.on('close', (code, reasonBuffer) => this.closed(socket, code, reasonBuffer.toString()));
  }

  private receive(text: string): void {
    const parsed = parseServerMessage(text);
    if (!parsed.ok) {
      this.handlers.onInvalidMessage(parsed.details);
      return;
    }
    if (parsed.message.type !== 'welcome') {
      this.handlers.onMessage(parsed.message);
      return;
    }
    if (this.state === 'online') {
      this.handlers.onInvalidMessage('a second welcome on the same connection');
      return;
    }

    const welcome = parsed.message;
    clearTimeout(this.welcomeTimer);
    this.state = 'online';
    this.welcomed = true;
    this.connections += 1;
    this.backoff.reset();
    this.online = new AbortController();
    this.heartbeatTimer = setInterval(() => this.send({ type: 'heartbeat' }), welcome.heartbeatIntervalS * 1000);
    this.handlers.onWelcome(welcome);
  }

  private closed(socket: WebSocket, closeCode: number, closeReason: string): void {
    if (this.socket !== socket) return;
    const code = this.rejectedStatus ?? closeCode;
    const reason = this.rejectedStatus === null ? closeReason : this.rejectedReason;
    this.socket = null;
    this.clearConnectionTimers();
    const wasOnline = this.welcomed;
    this.welcomed = false;
    this.online.abort(new Error(`connection closed with code ${code}`));
    this.lastCloseCode = code;
    const context = { code, codeName: closeCodeName(code), reason, wasOnline };

    if (this.state === 'stopped') {
      this.log.debug(context, 'connection closed after stop');
      this.handlers.onClose({ code, reason, wasOnline, reconnectInMs: null });
      return;
    }
    if (forbidsReconnect(code)) {
      this.state = 'stopped';
      this.log.warn(context, 'server closed the connection and forbids reconnecting');
      this.handlers.onClose({ code, reason, wasOnline, reconnectInMs: null });
      this.handlers.onStopped(code);
      return;
    }

    const delay = this.backoff.next();
    this.state = 'waiting';
    this.log.info({ ...context, delayMs: delay }, 'connection closed, reconnecting');
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.handlers.onClose({ code, reason, wasOnline, reconnectInMs: delay });
  }

  private clearConnectionTimers(): void {
    clearTimeout(this.welcomeTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.closeTimer);
  }
}
