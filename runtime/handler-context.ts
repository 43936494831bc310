import type { CloseReason } from '../protocol/close-codes.ts';
import type { ServerMessage } from '../protocol/messages.ts';
import type { HandlerContext } from '../handlers/context.ts';
import type { Connection } from './connection.ts';
import type { ReplicaServices } from './services.ts';

/**
 * The context handlers get for one connection: shared services plus this connection's session. It is built
 * once per connection and keeps its methods on the prototype, so a message allocates no context.
 */
class ConnectionContext implements HandlerContext {
  constructor(
    private readonly connection: Connection,
    private readonly services: ReplicaServices,
  ) {}

  get session() {
    return this.connection.session;
  }

  get state() {
    return this.services.state;
  }

  get bucket() {
    return this.services.bucket;
  }

  get patchStore() {
    return this.services.patchStore;
  }

  get patches() {
    return this.services.patches;
  }

  get settings() {
    return this.services.config;
  }

  get log() {
    return this.connection.log;
  }

  now(): number {
    return this.services.clock.now();
  }

  send(message: ServerMessage): void {
    this.connection.send(message);
    this.services.metrics.messagesOut(message.type);
  }

  close(reason: CloseReason): void {
    this.connection.close(reason);
  }

  markAlive(): void {
    const { deviceId, sessionId } = this.connection.session;
    if (deviceId !== null) this.services.heartbeats.mark(deviceId, sessionId);
  }

  extendDeadline(patchId: string, attempt: number): void {
    const deviceId = this.connection.session.deviceId;
    if (deviceId !== null) this.services.heartbeats.markProgress(deviceId, patchId, attempt);
  }

  bindDevice(deviceId: string, previousSessionId: string | null): void {
    const connection = this.connection;
    const session = connection.session;
    // hello names the device id of the token, so the token's string is kept and the copy from the message
    // can be collected.
    const id = deviceId === session.authenticatedDeviceId ? session.authenticatedDeviceId : deviceId;
    if (session.deviceId === null) {
      session.deviceId = id;
      connection.clearHelloTimer();
    }
    const displaced = this.services.registry.bind(id, connection);
    if (displaced) {
      displaced.log.info('newer session of the same device took over');
      displaced.close('session_replaced');
    }
    if (previousSessionId !== null && previousSessionId !== displaced?.session.sessionId) {
      this.services.events.publishKick(id, previousSessionId);
    }
  }
}

/** Returns the handler context of a connection, building it on the first call. */
export function handlerContextFactory(services: ReplicaServices): (connection: Connection) => HandlerContext {
  return (connection) => {
    connection.context ??= new ConnectionContext(connection, services);
    return connection.context;
  };
}
