import type { HandlerContext } from '../handlers/context.ts';
import type { Connection } from './connection.ts';
import type { ReplicaServices } from './services.ts';

/** Builds the context handlers get for a connection: shared services plus this connection's session. */
export function handlerContextFactory(services: ReplicaServices): (connection: Connection) => HandlerContext {
  const { config, registry } = services;
  return (connection) => ({
    session: connection.session,
    state: services.state,
    bucket: services.bucket,
    patchStore: services.patchStore,
    patches: services.patches,
    settings: config,
    get log() {
      return connection.log;
    },
    now: () => services.clock.now(),
    send: (message) => {
      connection.send(message);
      services.metrics.messagesOut(message.type);
    },
    close: (reason) => connection.close(reason),
    markAlive: () => {
      if (connection.session.deviceId !== null) {
        services.heartbeats.mark(connection.session.deviceId, connection.session.sessionId);
      }
    },
    bindDevice: (deviceId, previousSessionId) => {
      if (connection.session.deviceId === null) {
        connection.session.deviceId = deviceId;
        connection.log = connection.log.child({ deviceId });
        clearTimeout(connection.helloTimer);
      }
      const displaced = registry.bind(deviceId, connection);
      if (displaced) {
        displaced.log.info('newer session of the same device took over');
        displaced.close('session_replaced');
      }
      if (previousSessionId !== null && previousSessionId !== displaced?.session.sessionId) {
        services.events.publishKick(deviceId, previousSessionId);
      }
    },
  });
}
