/** Commands of a device load generator (bench/load/device-fleet.ts), shared by both sides of its IPC. */

/** Arrival times of the offers (or published messages) that reached the devices of one worker. */
export interface Arrivals {
  count: number;
  /** epochMs() of the first and the last arrival; 0 when none arrived. */
  first: number;
  last: number;
  /** Size in bytes of the last message that arrived. */
  bytes: number;
}

export interface ConnectParams {
  /** Device endpoints, such as ws://127.0.0.1:8080/device; device i uses urls[i % urls.length]. */
  urls: string[];
  /** Global device indices [from, to) this worker opens; the id of device i is `${prefix}${i}`. */
  from: number;
  to: number;
  prefix: string;
  /** Patch ids each device lists as applied in its hello. */
  patches: string[];
  /** Handshakes (TCP connect, upgrade, hello, welcome) in progress at once. */
  concurrency: number;
  /** Heartbeat interval in seconds; 0 sends none. */
  heartbeatS: number;
  /** Device token of each device in [from, to), in order; empty for a server that authenticates no one. */
  tokens: string[];
  timeoutMs: number;
}

export interface ConnectResult {
  connected: number;
  /** Devices that failed every attempt, and failed attempts that a later attempt made good. */
  failed: number;
  retried: number;
  /** epochMs() when the first handshake started and when the last welcome arrived. */
  startedAt: number;
  finishedAt: number;
  firstError: string | null;
}

export interface IngestResult {
  /** Device messages sent and known to be handled: every batch ends with a message the server replies to. */
  messages: number;
  startedAt: number;
  finishedAt: number;
  /** Error replies other than the one that ends each batch, by code. */
  errors: Record<string, number>;
}

export interface RolloutResult {
  done: number;
  failed: number;
  /** epochMs() of the last result_ack. */
  last: number;
  bytes: number;
}

export interface DownloadResult {
  done: number;
  failed: number;
  startedAt: number;
  finishedAt: number;
  bytes: number;
}

export interface FleetStats {
  open: number;
  /** Connections that closed without the harness asking, by close code. */
  unexpectedCloses: Record<string, number>;
  errors: Record<string, number>;
}

export type DeviceCommands = {
  connect: { params: ConnectParams; result: ConnectResult };
  /**
   * Starts counting arrivals afresh: each device's next frame counts, and is parsed only in `waitOffers`.
   * With `rollout` instead, each device parses its next offer at once, downloads the patch and reports.
   */
  arm: { params: { rollout: boolean; downloadSlots: number }; result: null };
  waitOffers: { params: { count: number; timeoutMs: number }; result: Arrivals };
  /** Sends `result applied` for every offer held and waits for the acknowledgements. */
  apply: { params: { timeoutMs: number }; result: { acked: number } };
  /** Sends batches of heartbeats and progress reports for `durationMs`, each batch ending with a barrier. */
  ingest: { params: { durationMs: number; barrierPatchId: string; timeoutMs: number }; result: IngestResult };
  /** Moves every device's update to `applying` and waits until the server has handled the reports. */
  finishUpdates: { params: { barrierPatchId: string; timeoutMs: number }; result: { devices: number } };
  waitRollout: { params: { count: number; timeoutMs: number }; result: RolloutResult };
  /** Fetches `url` `count` times through `downloadSlots` connections, without any WebSocket traffic. */
  download: { params: { url: string; count: number; size: number; downloadSlots: number; timeoutMs: number }; result: DownloadResult };
  /** Pauses or resumes the heartbeats of every device. */
  heartbeats: { params: { enabled: boolean }; result: null };
  stats: { params: null; result: FleetStats };
  close: { params: { timeoutMs: number }; result: { closed: number } };
};
