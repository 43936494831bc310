import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

export interface WsEvents {
  /** The upgrade succeeded. */
  open(): void;
  /** One text frame's payload, not yet decoded; `receivedAt` is epochMs() when its bytes were read. */
  text(payload: Buffer, receivedAt: number): void;
  /** The connection ended; 1006 when no close frame came. */
  close(code: number): void;
  /** The upgrade was rejected or the socket failed; `close` follows. */
  error(err: Error): void;
}

export interface WsTarget {
  host: string;
  port: number;
  path: string;
  /** Source address on the loopback network, so each simulated device can have its own address. */
  localAddress?: string;
}

/**
 * A minimal WebSocket client over a raw TCP socket, for load generation: far smaller per connection than a
 * full client library, so one process can hold thousands of devices.
 * It sends text frames with an all-zero masking key, which a server accepts like any other key, although
 * RFC 6455 requires an unpredictable one, so the payload needs no copy. It answers pings and close frames. NOTE: fragmented messages from the server are not reassembled:
 * the connection is closed with 1003 instead, which uWebSockets.js servers never trigger because they
 * send each message as one frame.
 */
export class RawWebSocket {
  private readonly socket: Socket;
  private pending: Buffer | null = null;
  private upgraded = false;
  private closeCode = 1006;
  private ended = false;

  constructor(
    target: WsTarget,
    headers: Record<string, string>,
    private readonly events: WsEvents,
    now: () => number,
  ) {
    const key = randomBytes(16).toString('base64');
    const expectedAccept = createHash('sha1').update(key + ACCEPT_GUID).digest('base64');
    let request = `GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\n`;
    request += `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
    for (const [name, value] of Object.entries(headers)) request += `${name}: ${value}\r\n`;
    request += '\r\n';

    this.socket = connect({ host: target.host, port: target.port, localAddress: target.localAddress, noDelay: true });
    this.socket.once('connect', () => this.socket.write(request));
    this.socket.on('data', (chunk: Buffer) => {
      const receivedAt = now();
      const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
      this.pending = null;
      if (this.upgraded) this.readFrames(data, receivedAt);
      else this.readUpgrade(data, expectedAccept, receivedAt);
    });
    this.socket.on('error', (err) => this.events.error(err));
    this.socket.on('close', () => {
      if (this.ended) return;
      this.ended = true;
      this.events.close(this.closeCode);
    });
  }

  get isOpen(): boolean {
    return this.upgraded && !this.ended;
  }

  /** Sends each text as one frame, all in one socket write. */
  send(...texts: string[]): void {
    if (!this.isOpen) return;
    let total = 0;
    for (const text of texts) {
      const length = Buffer.byteLength(text);
      total += frameHeaderLength(length) + length;
    }
    const out = Buffer.allocUnsafe(total);
    let offset = 0;
    for (const text of texts) offset = writeFrame(out, offset, OPCODE_TEXT, text);
    this.socket.write(out);
  }

  /** Sends a close frame and ends the socket. */
  close(code = 1000): void {
    if (!this.isOpen) {
      this.socket.destroy();
      return;
    }
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this.writeControl(OPCODE_CLOSE, payload);
    this.closeCode = code;
    this.socket.end();
  }

  /** Drops the TCP connection without a close frame. */
  destroy(): void {
    this.socket.destroy();
  }

  private readUpgrade(data: Buffer, expectedAccept: string, receivedAt: number): void {
    const end = data.indexOf('\r\n\r\n');
    if (end < 0) {
      this.pending = data;
      return;
    }
    const head = data.toString('latin1', 0, end);
    const statusLine = head.slice(0, head.indexOf('\r\n'));
    const accept = /^sec-websocket-accept:\s*(\S+)/im.exec(head)?.[1];
    if (!/^HTTP\/1\.1 101 /.test(statusLine) || accept !== expectedAccept) {
      this.events.error(new Error(`upgrade rejected: ${statusLine}`));
      this.socket.destroy();
      return;
    }
    this.upgraded = true;
    this.events.open();
    if (data.length > end + 4) this.readFrames(data.subarray(end + 4), receivedAt);
  }

  private readFrames(data: Buffer, receivedAt: number): void {
    let offset = 0;
    while (offset + 2 <= data.length) {
      const first = data[offset] as number;
      const second = data[offset + 1] as number;
      let length = second & 0x7f;
      let header = 2;
      if (length === 126) {
        if (offset + 4 > data.length) break;
        length = data.readUInt16BE(offset + 2);
        header = 4;
      } else if (length === 127) {
        if (offset + 10 > data.length) break;
        length = Number(data.readBigUInt64BE(offset + 2));
        header = 10;
      }
      const masked = (second & 0x80) !== 0;
      const maskOffset = offset + header;
      if (masked) header += 4;
      if (offset + header + length > data.length) break;
      const start = offset + header;
      const payload = data.subarray(start, start + length);
      if (masked) {
        for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (data[maskOffset + (i % 4)] as number);
      }
      offset = start + length;
      if ((first & 0x80) === 0 || (first & 0x0f) === 0) {
        this.close(1003);
        return;
      }
      this.onFrame(first & 0x0f, payload, receivedAt);
      if (this.ended) return;
    }
    if (offset < data.length) this.pending = Buffer.from(data.subarray(offset));
  }

  private onFrame(opcode: number, payload: Buffer, receivedAt: number): void {
    switch (opcode) {
      case OPCODE_TEXT:
        this.events.text(payload, receivedAt);
        break;
      case OPCODE_PING:
        this.writeControl(OPCODE_PONG, payload);
        break;
      case OPCODE_CLOSE:
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        if (this.isOpen) this.writeControl(OPCODE_CLOSE, payload.subarray(0, 2));
        this.socket.end();
        break;
      default:
        // Binary frames and pongs carry nothing a device of this protocol needs.
        break;
    }
  }

  private writeControl(opcode: number, payload: Buffer): void {
    const out = Buffer.allocUnsafe(frameHeaderLength(payload.length) + payload.length);
    const offset = writeHeader(out, 0, opcode, payload.length);
    payload.copy(out, offset);
    this.socket.write(out);
  }
}

function frameHeaderLength(length: number): number {
  const maskBytes = 4;
  if (length < 126) return 2 + maskBytes;
  if (length < 65_536) return 4 + maskBytes;
  return 10 + maskBytes;
}

/** Writes a final frame header with the mask bit and an all-zero masking key; returns the payload offset. */
function writeHeader(out: Buffer, offset: number, opcode: number, length: number): number {
  out[offset++] = 0x80 | opcode;
  if (length < 126) {
    out[offset++] = 0x80 | length;
  } else if (length < 65_536) {
    out[offset++] = 0x80 | 126;
    out.writeUInt16BE(length, offset);
    offset += 2;
  } else {
    out[offset++] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(length), offset);
    offset += 8;
  }
  out.writeUInt32BE(0, offset);
  return offset + 4;
}

function writeFrame(out: Buffer, offset: number, opcode: number, text: string): number {
  const payloadOffset = writeHeader(out, offset, opcode, Buffer.byteLength(text));
  return payloadOffset + out.write(text, payloadOffset, 'utf8');
}
