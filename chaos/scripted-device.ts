import WebSocket from 'ws';
import type { DeviceMessage, ServerMessage } from '../protocol/messages.ts';
import type { DeviceTruth } from './invariants.ts';

type Of<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

/**
 * A device that a scenario drives message by message, for faults the simulator does not make on its own:
 * duplicated, reordered and late reports, or a flood of requests. It downloads nothing: a scenario calls
 * `recordApplied` when the script says the device installed a patch, which is its ground truth.
 */
export class ScriptedDevice implements DeviceTruth {
  readonly received: ServerMessage[] = [];
  closeCode: number | null = null;
  private socket: WebSocket | null = null;
  private readonly applies = new Map<string, number>();
  private readonly order: string[] = [];
  private waiters: { type: string; from: number; resolve: (m: ServerMessage) => void }[] = [];
  private closedWaiters: ((code: number) => void)[] = [];

  constructor(
    readonly deviceId: string,
    private readonly token: string,
  ) {}

  get appliedPatches(): readonly string[] {
    return this.order;
  }

  applyCount(patchId: string): number {
    return this.applies.get(patchId) ?? 0;
  }

  get online(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  recordApplied(patchId: string): void {
    this.applies.set(patchId, this.applyCount(patchId) + 1);
    if (!this.order.includes(patchId)) this.order.push(patchId);
  }

  /** Opens a connection to `url`, says hello with the patches it holds and resolves with the welcome. */
  async connect(url: string): Promise<Of<'welcome'>> {
    const socket = new WebSocket(url, { headers: { authorization: `Bearer ${this.token}` }, perMessageDeflate: false });
    this.socket = socket;
    this.closeCode = null;
    socket.on('message', (data) => this.receive(JSON.parse(data.toString()) as ServerMessage));
    socket.on('close', (code) => {
      if (this.socket !== socket) return;
      this.closeCode = code;
      for (const waiter of this.closedWaiters.splice(0)) waiter(code);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const from = this.received.length;
    this.hello();
    return this.next('welcome', from);
  }

  hello(): void {
    this.send({ type: 'hello', protocol: 1, deviceId: this.deviceId, model: 'chaos-cam', firmware: '1.0.0', patches: [...this.order] });
  }

  send(message: DeviceMessage): void {
    this.socket?.send(JSON.stringify(message));
  }

  /** Resolves with the first message of `type` received at or after position `from` of `received`. */
  next<T extends ServerMessage['type']>(type: T, from = 0, timeoutMs = 30_000): Promise<Of<T>> {
    const ready = this.received.slice(from).find((m) => m.type === type);
    if (ready) return Promise.resolve(ready as Of<T>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.deviceId}: no ${type} message within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        type,
        from,
        resolve: (m: ServerMessage) => {
          clearTimeout(timer);
          resolve(m as Of<T>);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Resolves with the close code once the connection closed. */
  closed(): Promise<number> {
    if (this.closeCode !== null) return Promise.resolve(this.closeCode);
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  close(): void {
    this.socket?.close();
  }

  /** Drops the connection without a close frame. */
  drop(): void {
    this.socket?.terminate();
  }

  private receive(message: ServerMessage): void {
    this.received.push(message);
    const index = this.received.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (w.type !== message.type || index < w.from) return true;
      w.resolve(message);
      return false;
    });
  }
}
