import { randomUUID } from 'node:crypto';
import type { WebSocketBehavior } from 'uWebSockets.js';
import { HANDLERS, type Handler, type HandlerContext } from '../handlers/index.ts';
import { handlerContextFactory } from './handler-context.ts';
import { sendError } from '../handlers/send-error.ts';
import type { DeviceMessage, DeviceMessageType } from '../protocol/messages.ts';
import { parseDeviceMessage } from '../protocol/validate.ts';
import { Connection, type ConnectionShared, type SocketData } from './connection.ts';
import { authorizeUpgrade, type UpgradeRejection } from './device-auth.ts';
import { TokenBucket } from '../security/rate-limit.ts';
import type { HttpResponse } from 'uWebSockets.js';
import type { ReplicaServices } from './services.ts';

/** A device that sends this many invalid messages in a row is closed with `too_many_errors`. */
const MAX_INVALID_IN_A_ROW = 20;
/** Messages of one connection waiting for their handler; more are rejected with rate_limited. */
const MAX_PENDING_MESSAGES = 64;

function reject(res: HttpResponse, status: string, code: UpgradeRejection, message: string): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify({ error: code, message }));
  });
}

/**
 * The WebSocket behaviour of the device endpoint: it owns the sockets and bytes, validates every frame
 * against the protocol schemas and hands valid messages to the handler of their type.
 */
export function deviceSocketBehavior(services: ReplicaServices): WebSocketBehavior<SocketData> {
  const clientAddress = (remote: ArrayBuffer, forwardedFor: string) => {
    // Behind a proxy every device shares the proxy's address. The last X-Forwarded-For entry is the one
    // the proxy itself added, so only that one is trusted, and only when configured.
    if (config.security.trustForwardedFor && forwardedFor) return forwardedFor.split(',').pop()?.trim() ?? '';
    return Buffer.from(remote).toString();
  };
  const { config, registry, log } = services;
  let connectionCounter = 0;
  const contextFor = handlerContextFactory(services);
  const shared: ConnectionShared = {
    log,
    queueLimit: config.sendQueueLimit,
    onBackpressure: () => services.metrics.backpressure(),
  };
  // Read once: checking the level through a connection's logger would build that logger.
  const debug = log.isLevelEnabled('debug');

  return {
    // Frames up to four times the limit are read and answered with message_too_large, so a device learns
    // why; uWebSockets.js drops the connection on anything larger without reading it.
    maxPayloadLength: config.maxPayloadBytes * 4,
    // uWebSockets.js closes sockets that stay silent this long; devices heartbeat well within it.
    idleTimeout: Math.min(960, Math.max(config.heartbeatIntervalS * 4, 16)),
    sendPingsAutomatically: true,
    maxBackpressure: 256 * 1024,
    closeOnBackpressureLimit: 0,

    upgrade: (res, req, context) => {
      if (!services.accepting) {
        reject(res, '503 Service Unavailable', 'shutting_down', 'replica is shutting down; connect again');
        return;
      }
      // Everything from req must be read now: it is gone once this function returns.
      const remoteAddress = clientAddress(res.getRemoteAddressAsText(), req.getHeader('x-forwarded-for'));
      const authorization = req.getHeader('authorization');
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      if (!services.upgradeLimiter.take(remoteAddress)) {
        services.metrics.upgradeRejected('rate_limited');
        reject(res, '429 Too Many Requests', 'rate_limited', 'too many connection attempts from this address');
        return;
      }
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      void authorizeUpgrade(authorization, services.deviceTokens, services.state, config.security.enrollment).then(
        (decision) => {
          if (aborted) return;
          if (!decision.ok) {
            services.metrics.upgradeRejected(decision.code);
            log.info({ remoteAddress, code: decision.code }, 'device upgrade rejected');
            reject(res, decision.status, decision.code, decision.message);
            return;
          }
          if (decision.readmitted) {
            log.info({ remoteAddress, deviceId: decision.deviceId }, 'device re-admitted after redis lost its data');
          }
          const data: SocketData = {
            connectionId: `${config.replicaId}-${++connectionCounter}`,
            remoteAddress,
            deviceId: decision.deviceId,
          };
          // This build's cork() can close the fresh WebSocket after an async upgrade (docs/reliability.md,
          // Known gaps). Without cork() it prints a warning on every connection, which is worse for operators.
          res.cork(() => res.upgrade(data, key, protocol, extensions, context));
        },
      );
    },

    open: (ws) => {
      const data = ws.getUserData();
      const connection = new Connection(
        ws,
        shared,
        randomUUID(),
        data.connectionId,
        data.deviceId,
        new TokenBucket(config.security.deviceMessagesPerS, config.security.deviceMessageBurst),
      );
      data.connection = connection;
      registry.open.add(connection);
      services.metrics.connectionOpened();
      if (!services.accepting) {
        // The upgrade was authorized before shutdown began, but the drain already took its list of connections.
        connection.close('going_away');
        return;
      }
      connection.helloTimer = setTimeout(() => {
        if (connection.session.deviceId === null) {
          connection.log.info({ remoteAddress: data.remoteAddress }, 'no hello in time, closing');
          connection.close('hello_timeout');
        }
      }, config.helloTimeoutMs);
      if (debug) connection.log.debug({ remoteAddress: data.remoteAddress }, 'connection opened');
    },

    message: (ws, buffer, isBinary) => {
      const connection = ws.getUserData().connection;
      if (!connection) return;
      const ctx = contextFor(connection);
      if (isBinary) {
        rejectInvalid(connection, ctx, 'binary_not_supported');
        return;
      }
      if (buffer.byteLength > config.maxPayloadBytes) {
        rejectInvalid(connection, ctx, 'message_too_large', `${buffer.byteLength} bytes, limit ${config.maxPayloadBytes}`);
        return;
      }
      // The ArrayBuffer is only valid during this callback, so decode it before anything async.
      const parsed = parseDeviceMessage(Buffer.from(buffer).toString('utf8'));
      if (!parsed.ok) {
        rejectInvalid(connection, ctx, parsed.code, parsed.details);
        return;
      }
      connection.invalidInARow = 0;
      const message = parsed.message;
      if (!connection.rate.take() || connection.pending >= MAX_PENDING_MESSAGES) {
        services.metrics.invalidMessage('rate_limited');
        sendError(ctx, 'rate_limited', `got ${message.type}`);
        return;
      }
      services.metrics.messagesIn(message.type);
      connection.dispatch(handle, message, handlerFailed);
    },

    drain: (ws) => {
      ws.getUserData().connection?.flush();
    },

    close: (ws, code, message) => {
      const connection = ws.getUserData().connection;
      if (!connection) return;
      connection.markClosed();
      registry.open.delete(connection);
      services.metrics.connectionClosed();
      const { deviceId, sessionId } = connection.session;
      // For 1006 uWebSockets.js names the cause here, such as a too large frame or a TCP FIN without a close frame.
      if (debug) connection.log.debug({ code, reason: Buffer.from(message).toString() }, 'connection closed');
      if (deviceId === null) return;
      registry.unbind(deviceId, connection);
      services.state.releasePresence(deviceId, sessionId).catch((err: unknown) => {
        // The lease runs out by itself, so the device still shows offline within the lease time.
        connection.log.error({ err }, 'failed to release presence');
      });
    },
  };

  /** Runs the handler of one valid message; returns a promise only when the handler did not finish at once. */
  function handle(connection: Connection, message: DeviceMessage): Promise<void> | undefined {
    const ctx = contextFor(connection);
    if (message.type !== 'hello' && connection.session.deviceId === null) {
      sendError(ctx, 'hello_required', `got ${message.type}`);
      return undefined;
    }
    const handler = HANDLERS[message.type] as Handler<DeviceMessageType>;
    const started = services.metrics.handlerTimingStart();
    const running = handler(ctx, message);
    if (running === undefined) {
      handled(message, started);
      return undefined;
    }
    return running.then(() => handled(message, started));
  }

  function handlerFailed(connection: Connection, message: DeviceMessage, err: unknown): void {
    connection.log.error({ err, type: message.type }, 'handler failed');
    sendError(contextFor(connection), 'internal');
    // What the message changed is unknown (a Redis command may have run or not), so the device
    // reconnects, says hello and sends its pending results again, which brings both sides in line.
    connection.close('internal_error');
  }

  function handled(message: DeviceMessage, started: number): void {
    services.metrics.handled(message.type, started);
    if (message.type === 'result') services.metrics.result(message.outcome);
  }

  function rejectInvalid(connection: Connection, ctx: HandlerContext, code: Parameters<typeof sendError>[1], details?: string) {
    services.metrics.invalidMessage(code);
    connection.log.info({ code, details }, 'invalid message from device');
    sendError(ctx, code, details);
    connection.invalidInARow += 1;
    if (connection.invalidInARow >= MAX_INVALID_IN_A_ROW) connection.close('too_many_errors');
  }
}
