import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets in seconds, from 0.1 ms to 2.5 s. */
const LATENCY_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** One device message in this many has its handler timed into `fleet_handler_seconds`. */
export const HANDLER_SAMPLE_EVERY = 64;

/**
 * Counts by label kept as plain numbers and copied into a prom-client counter when /metrics is scraped.
 * A labelled `inc()` hashes its labels on every call, which costs more than the rest of a heartbeat's
 * handling.
 */
class LabelCounts {
  private readonly counts = new Map<string, number>();

  add(label: string): void {
    this.counts.set(label, (this.counts.get(label) ?? 0) + 1);
  }

  /** Copies the totals into `counter`, whose only label is `name`. */
  copyInto(counter: Counter, name: string): void {
    counter.reset();
    for (const [label, count] of this.counts) counter.inc({ [name]: label }, count);
  }
}

/**
 * Prometheus metrics of one replica, served at /metrics on the operator port. docs/observability.md lists
 * each metric with its meaning and labels.
 */
export class ReplicaMetrics {
  readonly registry = new Registry();
  private readonly connections: Gauge;
  private readonly invalidMessagesTotal: Counter;
  private readonly handlerSeconds: Histogram;
  private readonly backpressureTotal: Counter;
  private readonly upgradeRejectionsTotal: Counter;
  private readonly resultsTotal: Counter;
  private readonly redisSeconds: Histogram;
  private readonly redisErrorsTotal: Counter;
  private readonly bucketSeconds: Histogram;
  private readonly bucketErrorsTotal: Counter;
  readonly inFlight: Gauge;
  private open = 0;
  private readonly messagesInCounts = new LabelCounts();
  private readonly messagesOutCounts = new LabelCounts();
  private handlerSampleCounter = 0;

  constructor() {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry });
    this.connections = new Gauge({ name: 'fleet_device_connections', help: 'Open device WebSocket connections', registers: [registry] });
    const messagesIn = this.messagesInCounts;
    const messagesOut = this.messagesOutCounts;
    new Counter({
      name: 'fleet_messages_in_total',
      help: 'Valid device messages received, by type',
      labelNames: ['type'],
      registers: [registry],
      collect() {
        messagesIn.copyInto(this, 'type');
      },
    });
    new Counter({
      name: 'fleet_messages_out_total',
      help: 'Messages sent to devices, by type (offer counts offers sent)',
      labelNames: ['type'],
      registers: [registry],
      collect() {
        messagesOut.copyInto(this, 'type');
      },
    });
    this.invalidMessagesTotal = new Counter({ name: 'fleet_invalid_messages_total', help: 'Device messages rejected before a handler, by error code', labelNames: ['code'], registers: [registry] });
    this.handlerSeconds = new Histogram({ name: 'fleet_handler_seconds', help: `Time a handler took, by message type, for one message in ${HANDLER_SAMPLE_EVERY}`, labelNames: ['type'], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.backpressureTotal = new Counter({ name: 'fleet_backpressure_events_total', help: 'Sends that found the socket buffer full', registers: [registry] });
    this.upgradeRejectionsTotal = new Counter({ name: 'fleet_upgrade_rejections_total', help: 'Rejected device upgrades, by reason', labelNames: ['code'], registers: [registry] });
    this.resultsTotal = new Counter({ name: 'fleet_results_total', help: 'Update results recorded, by outcome', labelNames: ['outcome'], registers: [registry] });
    this.redisSeconds = new Histogram({ name: 'fleet_redis_seconds', help: 'Redis script latency, by script', labelNames: ['script'], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.redisErrorsTotal = new Counter({ name: 'fleet_redis_errors_total', help: 'Failed Redis script calls, by script', labelNames: ['script'], registers: [registry] });
    this.bucketSeconds = new Histogram({ name: 'fleet_bucket_seconds', help: 'Bucket call latency, by operation', labelNames: ['operation'], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.bucketErrorsTotal = new Counter({ name: 'fleet_bucket_errors_total', help: 'Failed bucket calls, by operation', labelNames: ['operation'], registers: [registry] });
    this.inFlight = new Gauge({ name: 'fleet_in_flight_updates', help: 'Updates in flight fleet-wide (in_flight_updates), sampled by this replica', registers: [registry] });
  }

  connectionOpened(): void {
    this.open += 1;
    this.connections.inc();
  }

  connectionClosed(): void {
    this.open -= 1;
    this.connections.dec();
  }

  backpressure(): void {
    this.backpressureTotal.inc();
  }

  messagesIn(type: string): void {
    this.messagesInCounts.add(type);
  }

  messagesOut(type: string): void {
    this.messagesOutCounts.add(type);
  }

  invalidMessage(code: string): void {
    this.invalidMessagesTotal.inc({ code });
  }

  upgradeRejected(code: string): void {
    this.upgradeRejectionsTotal.inc({ code });
  }

  result(outcome: string): void {
    this.resultsTotal.inc({ outcome });
  }

  /**
   * Returns the start time in milliseconds for the one message in HANDLER_SAMPLE_EVERY whose handler is
   * timed, and -1 for the others.
   */
  handlerTimingStart(): number {
    this.handlerSampleCounter = (this.handlerSampleCounter + 1) % HANDLER_SAMPLE_EVERY;
    return this.handlerSampleCounter === 0 ? performance.now() : -1;
  }

  /** Records the handler time of a message when `started` came from a timed handlerTimingStart(). */
  handled(type: string, started: number): void {
    if (started >= 0) this.handlerSeconds.observe({ type }, (performance.now() - started) / 1000);
  }

  redisCall(script: string, seconds: number, ok: boolean): void {
    this.redisSeconds.observe({ script }, seconds);
    if (!ok) this.redisErrorsTotal.inc({ script });
  }

  bucketCall(operation: string, seconds: number, ok: boolean): void {
    this.bucketSeconds.observe({ operation }, seconds);
    if (!ok) this.bucketErrorsTotal.inc({ operation });
  }

  /** The few numbers /readyz shows. */
  snapshot(): Record<string, unknown> {
    return { openConnections: this.open };
  }
}
