import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** Events replicas exchange over Redis pub/sub. */
export type ReplicaEvent =
  | { kind: 'catalog'; patchId?: string }
  | { kind: 'expired'; devices: string[] }
  /** Devices that may start an attempt of a rollout now, published by the Lua scripts (rollout.lua). */
  | { kind: 'wake'; devices: string[] }
  | { kind: 'kick'; deviceId: string; sessionId: string }
  | { kind: 'accepted'; deviceId: string }
  | { kind: 'revoked'; deviceId: string };

/**
 * Pub/sub between replicas. Redis drops what is published while a subscriber is disconnected, so events are
 * only a fast path: every replica also polls the catalog version and re-checks its devices on reconnect,
 * which closes any gap a lost event leaves.
 */
export class ReplicaEvents {
  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly channel: string,
    private readonly log: Logger,
  ) {}

  async subscribe(onEvent: (event: ReplicaEvent) => void, onResubscribed: () => void): Promise<void> {
    let subscribedOnce = false;
    this.subscriber.on('message', (channel: string, text: string) => {
      if (channel !== this.channel) return;
      let event: ReplicaEvent;
      try {
        event = JSON.parse(text) as ReplicaEvent;
      } catch (err) {
        this.log.error({ err, text: text.slice(0, 200) }, 'unreadable replica event');
        return;
      }
      onEvent(event);
    });
    this.subscriber.on('ready', () => {
      // ioredis re-subscribes by itself after a reconnect; anything published meanwhile was lost.
      if (subscribedOnce) {
        this.log.info('event subscription restored, reconciling');
        onResubscribed();
      }
    });
    await this.subscriber.subscribe(this.channel);
    subscribedOnce = true;
  }

  publish(event: ReplicaEvent): void {
    this.publisher.publish(this.channel, JSON.stringify(event)).catch((err: unknown) => {
      this.log.error({ err, kind: event.kind }, 'failed to publish replica event');
    });
  }

  publishKick(deviceId: string, sessionId: string): void {
    this.publish({ kind: 'kick', deviceId, sessionId });
  }
}
