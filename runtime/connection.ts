import type { Logger } from 'pino';
import type { WebSocket } from 'uWebSockets.js';
import { CLOSE_CODES, type CloseReason } from '../protocol/close-codes.ts';
import type { ServerMessage } from '../protocol/messages.ts';
import type { Session } from '../handlers/context.ts';
import type { TokenBucket } from '../security/rate-limit.ts';

/** Per-socket data uWebSockets.js keeps for us; the Connection is attached at open. */
export interface SocketData {
  connectionId: string;
  remoteAddress: string;
  /** Device id from the verified token. */
  deviceId: string;
  connection?: Connection;
}

/** uWebSockets.js send() results. */
const SEND_BUFFERED = 0;
const SEND_DROPPED = 2;

/**
 * One device connection: the socket, the handler session, its logger, an ordered task chain and an outbound
 * queue. Messages of one connection are handled one after another, in arrival order, so a `result` can
 * never overtake the `progress` sent before it.
 *
 * Backpressure: uWebSockets.js buffers what the kernel does not take. Once that buffer passes
 * `maxBackpressure`, send() drops the message, so a dropped message goes back into our own queue and is
 * written again on `drain`. When our queue passes its limit the device is too slow to serve: it is closed
 * with `backpressure` (4002). It loses nothing, because offers live in Redis and are sent again on reconnect.
 */
export class Connection {
  readonly session: Session;
  private readonly outbox: string[] = [];
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  invalidInARow = 0;
  /** Closes the connection if no `hello` arrives in time; cleared by the first accepted `hello`. */
  helloTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket<SocketData>,
    public log: Logger,
    sessionId: string,
    connectionId: string,
    authenticatedDeviceId: string,
    private readonly queueLimit: number,
    private readonly onBackpressure: () => void,
    readonly rate: TokenBucket,
  ) {
    this.session = { connectionId, sessionId, authenticatedDeviceId, deviceId: null, offer: null };
  }

  /** Messages received and not yet handled. */
  pending = 0;

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs `task` after every task queued before it on this connection. */
  enqueue(task: () => Promise<void>): Promise<void> {
    this.pending += 1;
    const next = this.chain.then(() => (this.closed ? undefined : task())).finally(() => {
      this.pending -= 1;
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  send(message: ServerMessage): void {
    if (this.closed) return;
    const text = JSON.stringify(message);
    if (this.outbox.length > 0) {
      this.queue(text);
      return;
    }
    const status = this.ws.send(text, false);
    if (status === SEND_DROPPED) this.queue(text);
    else if (status === SEND_BUFFERED) this.onBackpressure();
  }

  /** Writes queued messages while uWebSockets.js takes them; called on `drain`. */
  flush(): void {
    while (!this.closed && this.outbox.length > 0) {
      const status = this.ws.send(this.outbox[0] as string, false);
      if (status === SEND_DROPPED) return;
      this.outbox.shift();
      if (status === SEND_BUFFERED) return;
    }
  }

  private queue(text: string): void {
    this.onBackpressure();
    this.outbox.push(text);
    if (this.outbox.length > this.queueLimit) {
      this.log.warn({ queued: this.outbox.length }, 'device reads too slowly, closing');
      this.close('backpressure');
    }
  }

  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.end(CLOSE_CODES[reason].code, reason);
  }

  /** Called from the socket's close handler: the socket is gone and must not be touched again. */
  markClosed(): void {
    this.closed = true;
    this.outbox.length = 0;
    clearTimeout(this.helloTimer);
  }
}
