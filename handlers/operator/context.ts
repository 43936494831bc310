import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { DeviceTokens } from '../../security/device-tokens.ts';
import type { OperatorRole } from '../../security/operator-tokens.ts';
import type { PatchBucket } from '../../storage/bucket.ts';
import type { Catalog } from '../../storage/catalog.ts';
import type { RolloutStore } from '../../storage/rollouts.ts';
import type { StateStore } from '../../storage/state-store.ts';
import type { FleetSummary } from '../../storage/summary.ts';

/** What operator route handlers get; like device handlers they keep no state between requests. */
export interface OperatorContext {
  state: StateStore;
  rollouts: RolloutStore;
  catalog: Catalog;
  bucket: PatchBucket;
  deviceTokens: DeviceTokens;
  /** The fleet summary, computed at most once a second per replica and shared by every caller. */
  summary(): Promise<FleetSummary>;
  requireSignatures: boolean;
  log: Logger;
}

export interface ApiRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  operator: { name: string; role: OperatorRole };
  headers: Record<string, string>;
  /** Parsed JSON body, for routes that take one. */
  json?: unknown;
  /** Streamed body, for upload routes; `length` comes from Content-Length. */
  body?: { stream: Readable; length: number };
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

export type ApiHandler = (ctx: OperatorContext, request: ApiRequest) => Promise<ApiResponse>;
