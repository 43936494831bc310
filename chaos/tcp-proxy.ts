import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/** Passes bytes on at most `bytesPerSecond`, in slices, so that the reader upstream of it is held back. */
class Throttle extends Transform {
  private startedAt = performance.now();
  private passed = 0;

  constructor(private bytesPerSecond: number) {
    super({ highWaterMark: 1024 });
  }

  /** Changes the rate from now on; 0 passes bytes on as they come. */
  setRate(bytesPerSecond: number): void {
    this.bytesPerSecond = bytesPerSecond;
    this.startedAt = performance.now();
    this.passed = 0;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    void this.pass(chunk).then(() => done(), done);
  }

  private async pass(chunk: Buffer): Promise<void> {
    if (this.bytesPerSecond === 0) {
      this.push(chunk);
      return;
    }
    const slice = Math.max(64, Math.floor(this.bytesPerSecond / 10));
    for (let start = 0; start < chunk.length; start += slice) {
      const part = chunk.subarray(start, start + slice);
      if (this.bytesPerSecond === 0) {
        this.push(chunk.subarray(start));
        return;
      }
      this.passed += part.length;
      const dueAt = this.startedAt + (this.passed / this.bytesPerSecond) * 1000;
      const waitMs = dueAt - performance.now();
      if (waitMs > 0) await sleep(waitMs);
      this.push(part);
    }
  }
}

interface Pair {
  client: Socket;
  upstream: Socket;
  throttle: Throttle | null;
}

/**
 * A TCP proxy on 127.0.0.1 in front of one port, standing in for the network between devices and a replica.
 * It can drop every device's side at once (a reconnect storm) and can slow down what devices read.
 */
export class TcpProxy {
  private readonly pairs = new Set<Pair>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** `readBytesPerSecond` limits what each client reads from the target; 0 for no limit. */
  static async start(targetPort: number, readBytesPerSecond = 0): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
      const throttle = readBytesPerSecond > 0 ? new Throttle(readBytesPerSecond) : null;
      const pair = { client, upstream, throttle };
      proxy?.pairs.add(pair);
      const end = () => {
        client.destroy();
        upstream.destroy();
        proxy?.pairs.delete(pair);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream);
      if (throttle) upstream.pipe(throttle).pipe(client);
      else upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    proxy = new TcpProxy(server, typeof address === 'object' && address ? address.port : 0);
    return proxy;
  }

  url(path = '/device'): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  /**
   * Drops the device side of every connection at once, as a lost network would: devices see 1006. The
   * replica's side stays open and silent until the replica closes it, as a half-open connection does.
   */
  dropClients(): number {
    const dropped = this.pairs.size;
    for (const pair of this.pairs) {
      pair.upstream.unpipe();
      pair.client.unpipe();
      pair.upstream.removeAllListeners('close');
      pair.upstream.on('close', () => this.pairs.delete(pair));
      // Whatever the replica sends now goes nowhere, as it would into a dead network path.
      pair.upstream.resume();
      pair.client.removeAllListeners('close');
      pair.client.destroy();
    }
    return dropped;
  }

  /** Lifts the read limit of every open connection, as when a slow network recovers. */
  unthrottle(): void {
    for (const pair of this.pairs) pair.throttle?.setRate(0);
  }

  async stop(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
