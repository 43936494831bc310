import { connect, type Socket } from 'node:net';

const CONNECT = 0x10;
const CONNACK = 0x20;
const PUBLISH = 0x30;
const SUBSCRIBE = 0x82;
const SUBACK = 0x90;

/** MQTT's variable-length "remaining length" field. */
function remainingLength(length: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return Buffer.from(bytes);
}

function utf8Field(text: string): Buffer {
  const bytes = Buffer.from(text);
  const out = Buffer.alloc(2 + bytes.length);
  out.writeUInt16BE(bytes.length);
  bytes.copy(out, 2);
  return out;
}

function packet(type: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type]), remainingLength(body.length), body]);
}

/** CONNECT of MQTT 3.1.1 with a clean session and keep-alive off, so the broker never expects pings. */
function connectPacket(clientId: string): Buffer {
  return packet(CONNECT, Buffer.concat([utf8Field('MQTT'), Buffer.from([4, 0x02, 0, 0]), utf8Field(clientId)]));
}

export function publishPacket(topic: string, payload: string): Buffer {
  return packet(PUBLISH, Buffer.concat([utf8Field(topic), Buffer.from(payload)]));
}

export interface MqttEvents {
  /** A PUBLISH arrived; `receivedAt` is the caller's clock when its bytes were read. */
  publish(payloadBytes: number, receivedAt: number): void;
  close(): void;
  error(err: Error): void;
}

/**
 * A minimal MQTT 3.1.1 client over a raw TCP socket: CONNECT, optional SUBSCRIBE at QoS 0, then it counts
 * PUBLISH packets. Enough for a fan-out yardstick; it implements no QoS above 0 and no keep-alive.
 */
export class RawMqttClient {
  private readonly socket: Socket;
  private pending: Buffer | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
  }

  /** Connects and, when `topic` is given, subscribes; resolves after the SUBACK (or the CONNACK). */
  static open(options: { host: string; port: number; clientId: string; topic?: string; localAddress?: string }, events: MqttEvents, now: () => number): Promise<RawMqttClient> {
    const socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress, noDelay: true });
    const client = new RawMqttClient(socket);
    return new Promise((resolve, reject) => {
      let ready = false;
      socket.once('connect', () => socket.write(connectPacket(options.clientId)));
      socket.on('error', (err) => {
        if (!ready) reject(err);
        else events.error(err);
      });
      socket.on('close', () => {
        if (!ready) reject(new Error(`${options.clientId}: the broker closed the connection during the handshake`));
        else events.close();
      });
      client.onPacket = (type, body, receivedAt) => {
        if (type === CONNACK) {
          if (body[1] !== 0) {
            reject(new Error(`${options.clientId}: CONNACK return code ${body[1]}`));
            socket.destroy();
            return;
          }
          if (options.topic === undefined) {
            ready = true;
            resolve(client);
            return;
          }
          const subscribe = Buffer.concat([Buffer.from([0, 1]), utf8Field(options.topic), Buffer.from([0])]);
          socket.write(packet(SUBSCRIBE, subscribe));
        } else if (type === SUBACK) {
          ready = true;
          resolve(client);
        } else if ((type & 0xf0) === PUBLISH) {
          const topicLength = body.readUInt16BE(0);
          events.publish(body.length - 2 - topicLength, receivedAt);
        }
      };
      socket.on('data', (chunk: Buffer) => client.read(chunk, now()));
    });
  }

  private onPacket: (type: number, body: Buffer, receivedAt: number) => void = () => undefined;

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  close(): void {
    this.socket.end(Buffer.from([0xe0, 0]));
  }

  private read(chunk: Buffer, receivedAt: number): void {
    const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let offset = 0;
    while (offset + 2 <= data.length) {
      let length = 0;
      let multiplier = 1;
      let cursor = offset + 1;
      let complete = false;
      while (cursor < data.length && cursor < offset + 5) {
        const byte = data[cursor++] as number;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || cursor + length > data.length) break;
      this.onPacket(data[offset] as number, data.subarray(cursor, cursor + length), receivedAt);
      offset = cursor + length;
    }
    if (offset < data.length) this.pending = Buffer.from(data.subarray(offset));
  }
}
