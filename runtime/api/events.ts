import type { HttpResponse } from 'uWebSockets.js';
import type { FleetSummary } from '../../storage/summary.ts';

/**
 * Server-sent events for the dashboard and `watch` commands: one `summary` event per second to every
 * subscriber, from one shared summary computation. A client that reads too slowly misses summaries (the
 * next one replaces them) instead of growing a buffer.
 */
export class SummaryStream {
  private readonly clients = new Set<{ res: HttpResponse; slow: boolean }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly summary: () => Promise<FleetSummary>,
    private readonly intervalMs = 1000,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  add(res: HttpResponse): void {
    const client = { res, slow: false };
    res.onAborted(() => this.clients.delete(client));
    res.cork(() => {
      res
        .writeStatus('200 OK')
        .writeHeader('content-type', 'text/event-stream')
        .writeHeader('cache-control', 'no-store')
        .write(': connected\n\n');
    });
    this.clients.add(client);
    this.timer ??= setInterval(() => void this.tick(), this.intervalMs);
    void this.sendTo(client);
  }

  private async sendTo(client: { res: HttpResponse; slow: boolean }): Promise<void> {
    let summary;
    try {
      summary = await this.summary();
    } catch {
      return; // Redis is away; the next tick tries again.
    }
    if (this.clients.has(client)) this.write(client, `event: summary\ndata: ${JSON.stringify(summary)}\n\n`);
  }

  private write(client: { res: HttpResponse; slow: boolean }, text: string): void {
    if (client.slow) return;
    client.res.cork(() => {
      if (!client.res.write(text)) {
        client.slow = true;
        client.res.onWritable(() => {
          client.slow = false;
          return true;
        });
      }
    });
  }

  private async tick(): Promise<void> {
    if (this.clients.size === 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      return;
    }
    let summary;
    try {
      summary = await this.summary();
    } catch {
      return; // Redis is away; the next tick tries again.
    }
    const text = `event: summary\ndata: ${JSON.stringify(summary)}\n\n`;
    for (const client of this.clients) this.write(client, text);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const client of this.clients) client.res.close();
    this.clients.clear();
  }
}
