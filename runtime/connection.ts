import type { Logger } from 'pino';
import type { WebSocket } from 'uWebSockets.js';
import { CLOSE_CODES, type CloseReason } from '../protocol/close-codes.ts';
import type { ServerMessage } from '../protocol/messages.ts';
import type { HandlerContext, Session } from '../handlers/context.ts';
import type { TokenBucket } from '../security/rate-limit.ts';

/** Per-socket data uWebSockets.js keeps for us; the Connection is attached at open. */
export interface SocketData {
  connectionId: string;
  remoteAddress: string;
  /** Device id from the verified token. */
  deviceId: string;
  connection?: Connection;
}

/** Settings and callbacks shared by every connection of a replica; each connection stores one reference to them. */
export interface ConnectionShared {
  /** Parent of each connection's logger. */
  log: Logger;
  /** Messages our own outbound queue may hold before the device is closed with `backpressure`. */
  queueLimit: number;
  onBackpressure(): void;
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
 *
 * Memory: a replica keeps tens of thousands of these, so the outbound queue and the task chain exist only
 * while they contain something, and the logger is built when a line is written.
 */
export class Connection {
  readonly session: Session;
  /** The handler context of this connection, built once by runtime/handler-context.ts. */
  context: HandlerContext | undefined;
  private outbox: string[] | null = null;
  /** The last task queued while another one was running; null when the connection is idle. */
  private chain: Promise<void> | null = null;
  private closed = false;
  invalidInARow = 0;
  /** Closes the connection if no `hello` arrives in time; cleared by the first accepted `hello`. */
  helloTimer: NodeJS.Timeout | undefined;
  /** Messages received and not yet handled. */
  pending = 0;

  constructor(
    private readonly ws: WebSocket<SocketData>,
    private readonly shared: ConnectionShared,
    sessionId: string,
    connectionId: string,
    authenticatedDeviceId: string,
    readonly rate: TokenBucket,
  ) {
    this.session = { connectionId, sessionId, authenticatedDeviceId, deviceId: null, offer: null, stage: null };
  }

  /**
   * A logger bound to the connection id, session id and the device id from the token. It is built on each
   * use and not kept. A kept child logger takes several hundred bytes of heap per connection, while building
   * one costs about 3 µs (pino 10, measured on a 2-core EPYC), and at the default level a connection logs
   * only a few lines in its life.
   */
  get log(): Logger {
    return this.shared.log.child({
      connectionId: this.session.connectionId,
      sessionId: this.session.sessionId,
      deviceId: this.session.authenticatedDeviceId,
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs `task` after every task queued before it on this connection. */
  enqueue(task: () => Promise<void> | void): Promise<void> {
    this.pending += 1;
    const previous = this.chain ?? Promise.resolve();
    const next = previous.then(() => (this.closed ? undefined : task())).finally(() => this.settle());
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Runs `run(this, argument)` at once when nothing is queued, otherwise after the queued tasks, and reports
   * a failure to `onError`. A task that completes synchronously costs no promise and no closure, which is
   * the common case for heartbeats and repeated progress reports.
   */
  dispatch<T>(
    run: (connection: Connection, argument: T) => Promise<void> | undefined,
    argument: T,
    onError: (connection: Connection, argument: T, err: unknown) => void,
  ): void {
    if (this.pending > 0) {
      this.enqueue(() => run(this, argument)).catch((err: unknown) => onError(this, argument, err));
      return;
    }
    if (this.closed) return;
    let running: Promise<void> | undefined;
    try {
      running = run(this, argument);
    } catch (err) {
      onError(this, argument, err);
      return;
    }
    if (running === undefined) return;
    this.pending += 1;
    const next = running.finally(() => this.settle());
    this.chain = next.catch(() => undefined);
    next.catch((err: unknown) => onError(this, argument, err));
  }

  private settle(): void {
    this.pending -= 1;
    // Dropping the last link lets an idle connection hold no promise at all.
    if (this.pending === 0) this.chain = null;
  }

  send(message: ServerMessage): void {
    if (this.closed) return;
    const text = JSON.stringify(message);
    if (this.outbox !== null && this.outbox.length > 0) {
      this.queue(text);
      return;
    }
    const status = this.ws.send(text, false);
    if (status === SEND_DROPPED) this.queue(text);
    else if (status === SEND_BUFFERED) this.shared.onBackpressure();
  }

  /** Writes queued messages while uWebSockets.js takes them; called on `drain`. */
  flush(): void {
    const outbox = this.outbox;
    if (outbox === null) return;
    while (!this.closed && outbox.length > 0) {
      const status = this.ws.send(outbox[0] as string, false);
      if (status === SEND_DROPPED) return;
      outbox.shift();
      if (status === SEND_BUFFERED) return;
    }
    this.outbox = null;
  }

  private queue(text: string): void {
    this.shared.onBackpressure();
    this.outbox ??= [];
    this.outbox.push(text);
    if (this.outbox.length > this.shared.queueLimit) {
      this.log.warn({ queued: this.outbox.length }, 'device reads too slowly, closing');
      this.close('backpressure');
    }
  }

  /** Stops the timer that waits for `hello` and lets it be collected. */
  clearHelloTimer(): void {
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
  }

  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.end(CLOSE_CODES[reason].code, reason);
  }

  /** Called from the socket's close handler: the socket is gone and must not be touched again. */
  markClosed(): void {
    this.closed = true;
    this.outbox = null;
    this.clearHelloTimer();
  }
}
