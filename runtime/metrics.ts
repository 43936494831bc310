/**
 * Counters of one replica. Kept in plain numbers here; exposed by the health endpoints and the logs.
 * TODO: export them in Prometheus format with prom-client once the operator tools land.
 */
export class ReplicaMetrics {
  openConnections = 0;
  backpressureEvents = 0;
  readonly inByType = new Map<string, number>();
  readonly outByType = new Map<string, number>();
  readonly invalidByCode = new Map<string, number>();
  readonly upgradeRejections = new Map<string, number>();
  readonly handlerMs = new Map<string, { count: number; totalMs: number }>();

  connectionOpened(): void {
    this.openConnections += 1;
  }

  connectionClosed(): void {
    this.openConnections -= 1;
  }

  backpressure(): void {
    this.backpressureEvents += 1;
  }

  messagesIn(type: string): void {
    this.inByType.set(type, (this.inByType.get(type) ?? 0) + 1);
  }

  messagesOut(type: string): void {
    this.outByType.set(type, (this.outByType.get(type) ?? 0) + 1);
  }

  invalidMessage(code: string): void {
    this.invalidByCode.set(code, (this.invalidByCode.get(code) ?? 0) + 1);
  }

  upgradeRejected(code: string): void {
    this.upgradeRejections.set(code, (this.upgradeRejections.get(code) ?? 0) + 1);
  }

  handled(type: string, ms: number): void {
    const entry = this.handlerMs.get(type) ?? { count: 0, totalMs: 0 };
    entry.count += 1;
    entry.totalMs += ms;
    this.handlerMs.set(type, entry);
  }

  snapshot(): Record<string, unknown> {
    return {
      openConnections: this.openConnections,
      backpressureEvents: this.backpressureEvents,
      messagesIn: Object.fromEntries(this.inByType),
      messagesOut: Object.fromEntries(this.outByType),
      invalidMessages: Object.fromEntries(this.invalidByCode),
      upgradeRejections: Object.fromEntries(this.upgradeRejections),
    };
  }
}
