import { randomUUID } from 'node:crypto';
import { getHeapSpaceStatistics } from 'node:v8';
import type { WebSocket } from 'uWebSockets.js';
import { loadNativeUws } from '../../runtime/uws.ts';
import { epochMs } from '../lib/stats.ts';

/** Topic every connection joins, so one publish reaches them all. */
export const FAN_OUT_TOPIC = 'fleet';

export interface PeerSocket {
  deviceId: string | null;
  closed: boolean;
}

export interface PeerOptions {
  /** Heartbeat interval announced in the welcome; also sets the idle timeout as the product does. */
  heartbeatS: number;
  /** Called for every text frame after the hello. */
  onMessage(ws: WebSocket<PeerSocket>, text: string): void;
}

/**
 * A uWebSockets.js server with the socket settings of the product's device endpoint and nothing else: it
 * replies to a device's first message with a welcome of the product's shape and joins the socket to one topic.
 * What it does with later messages is up to the caller.
 */
export async function startUwsPeer(options: PeerOptions): Promise<{ port: number; publish(bytes: number): { t0: number; returnedMs: number } }> {
  const uws = loadNativeUws();
  const app = uws.App();
  app.ws<PeerSocket>('/device', {
    maxPayloadLength: 64 * 1024,
    idleTimeout: Math.min(960, Math.max(options.heartbeatS * 4, 16)),
    sendPingsAutomatically: true,
    maxBackpressure: 256 * 1024,
    closeOnBackpressureLimit: 0,
    upgrade: (res, req, context) => {
      res.upgrade<PeerSocket>(
        { deviceId: null, closed: false },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      ws.subscribe(FAN_OUT_TOPIC);
    },
    message: (ws, buffer) => {
      const text = Buffer.from(buffer).toString('utf8');
      const data = ws.getUserData();
      if (data.deviceId === null) {
        data.deviceId = (JSON.parse(text) as { deviceId: string }).deviceId;
        const welcome = {
          type: 'welcome',
          protocol: 1,
          sessionId: randomUUID(),
          heartbeatIntervalS: options.heartbeatS,
          serverTime: Date.now(),
        };
        ws.send(JSON.stringify(welcome), false);
        return;
      }
      options.onMessage(ws, text);
    },
    close: (ws) => {
      ws.getUserData().closed = true;
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    app.listen('127.0.0.1', 0, (socket) => {
      if (socket) resolve(uws.us_socket_local_port(socket as unknown as Parameters<typeof uws.us_socket_local_port>[0]));
      else reject(new Error('the peer could not listen on 127.0.0.1'));
    });
  });
  return {
    port,
    publish(bytes) {
      const message = paddedOffer(bytes);
      const t0 = epochMs();
      app.publish(FAN_OUT_TOPIC, message, false);
      return { t0, returnedMs: epochMs() - t0 };
    },
  };
}

/** Returns a JSON message of type offer that is exactly `bytes` long. */
export function paddedOffer(bytes: number): string {
  const head = '{"type":"offer","patchId":"bench","attempt":1,"url":"","size":0,"pad":"';
  const tail = '"}';
  return head + 'x'.repeat(Math.max(0, bytes - head.length - tail.length)) + tail;
}

/**
 * Runs a full garbage collection and returns the physical bytes of V8's young generation, which the
 * collection empties but keeps. The process must run with --expose-gc.
 */
export function collectGarbage(): { youngBytes: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('start this process with --expose-gc');
  gc();
  gc();
  const youngBytes = getHeapSpaceStatistics()
    .filter((space) => space.space_name === 'new_space' || space.space_name === 'new_large_object_space')
    .reduce((sum, space) => sum + space.physical_space_size, 0);
  return { youngBytes };
}
