import type { Connection } from './connection.ts';

/** Connections of this replica that completed `hello`, by device id. */
export class ConnectionRegistry {
  private readonly byDevice = new Map<string, Connection>();
  /** Every open connection, including those still waiting for their `hello`. */
  readonly open = new Set<Connection>();

  get size(): number {
    return this.byDevice.size;
  }

  get(deviceId: string): Connection | undefined {
    return this.byDevice.get(deviceId);
  }

  /** Registers `connection` for its device and returns the connection it displaced, if any. */
  bind(deviceId: string, connection: Connection): Connection | undefined {
    const previous = this.byDevice.get(deviceId);
    this.byDevice.set(deviceId, connection);
    return previous === connection ? undefined : previous;
  }

  /** Removes the entry only if it still points at this connection. */
  unbind(deviceId: string, connection: Connection): void {
    if (this.byDevice.get(deviceId) === connection) this.byDevice.delete(deviceId);
  }

  values(): IterableIterator<Connection> {
    return this.byDevice.values();
  }
}
