import WebSocket from 'ws';
import type { ServerMessage } from '../../protocol/messages.ts';

/**
 * A bare WebSocket device for protocol tests: sends whatever the test gives it, raw or as JSON, and lets the
 * test wait for the next server message of a type. Unlike the simulator it does nothing by itself.
 */
export class RawDevice {
  readonly received: ServerMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: { type: string; resolve: (m: ServerMessage) => void; reject: (err: Error) => void }[] = [];
  private cursor = new Map<string, number>();
  private closedWith: { code: number; reason: string } | null = null;
  private lastError: Error | null = null;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as ServerMessage;
      this.received.push(message);
      this.waiters = this.waiters.filter((w) => {
        if (w.type !== message.type) return true;
        this.take(w.type);
        w.resolve(message);
        return false;
      });
    });
    socket.on('error', (err) => {
      this.lastError = err;
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reasonBuffer) => {
        const closed = { code, reason: reasonBuffer.toString() };
        this.closedWith = closed;
        // A message that has not come by now never will: fail the waiting test instead of leaving it hanging.
        for (const waiter of this.waiters.splice(0)) waiter.reject(this.closedError(waiter.type));
        resolve(closed);
      });
    });
  }

  /**
   * Opens a connection and makes sure it survived its upgrade: a ping must come back before the test gets
   * it. The uWebSockets.js build drops a fresh connection with 1006 now and then (Known gaps in
   * docs/reliability.md); a real device reconnects then, and so does this one, up to a few times.
   */
  static async connect(url: string, token?: string): Promise<RawDevice> {
    for (let attempt = 1; ; attempt++) {
      const socket = new WebSocket(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      const device = new RawDevice(socket);
      const pong = new Promise<'pong'>((resolve) => socket.once('pong', () => resolve('pong')));
      socket.ping();
      const first = await Promise.race([pong, device.closed]);
      if (first === 'pong' || first.code !== 1006 || device.received.length > 0) return device;
      if (attempt === 5) throw new Error(`the connection dropped right after its upgrade ${attempt} times`);
    }
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.socket.send(data, { binary });
  }

  hello(deviceId: string, patches: string[] = []): void {
    this.send({ type: 'hello', protocol: 1, deviceId, model: 'test-cam', firmware: '1.0.0', patches });
  }

  /** Returns the next message of `type` that the test has not taken yet, waiting for it if needed. */
  next<T extends ServerMessage['type']>(type: T): Promise<Extract<ServerMessage, { type: T }>> {
    const index = this.cursor.get(type) ?? 0;
    const seen = this.received.filter((m) => m.type === type);
    const ready = seen[index];
    if (ready) {
      this.take(type);
      return Promise.resolve(ready as Extract<ServerMessage, { type: T }>);
    }
    if (this.closedWith) return Promise.reject(this.closedError(type));
    return new Promise((resolve, reject) => {
      this.waiters.push({ type, resolve: resolve as (m: ServerMessage) => void, reject });
    });
  }

  private closedError(type: string): Error {
    const { code, reason } = this.closedWith ?? { code: 0, reason: '' };
    const got = this.received.map((m) => (m.type === 'error' ? `error:${m.code}` : m.type)).join(', ') || 'nothing';
    const error = this.lastError ? `, socket error: ${this.lastError.message}` : '';
    return new Error(`connection closed (${code} ${reason}) while waiting for ${type}; received: ${got}${error}`);
  }

  private take(type: string): void {
    this.cursor.set(type, (this.cursor.get(type) ?? 0) + 1);
  }

  close(): void {
    this.socket.close();
  }
}
