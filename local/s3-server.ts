import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

export const LOCAL_S3_ACCESS_KEY = 'S3RVER';
export const LOCAL_S3_SECRET_KEY = 'S3RVER';

export interface LocalS3 {
  endpoint: string;
  port: number;
  /** Folder with the buckets and objects. */
  directory: string;
  accessKey: string;
  secretKey: string;
  /**
   * Stops the server and drops every open connection, downloads in progress included, as a crashed store
   * would. The folder is deleted unless `keepData` is set or the caller passed its own `directory`.
   */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

export interface LocalS3Options {
  /** Port on 127.0.0.1; 0 or absent picks a free one. Pass the port of a stopped server to start it again. */
  port?: number;
  /** Folder to keep the objects in, e.g. that of a stopped server; absent creates a fresh temporary folder. */
  directory?: string;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}

/**
 * Starts an S3-compatible server (s3rver, from the dev dependencies) on 127.0.0.1. For the demo, the tests
 * and the benchmarks; production uses MinIO or S3.
 * s3rver checks SigV4 signatures, so expired or tampered signed URLs are rejected as they would be by MinIO.
 * A server stopped with `keepData` can be started again on the same port and folder, which is how the fault
 * scenarios make the bucket unreachable for a while.
 */
export async function startLocalS3(options: LocalS3Options = {}): Promise<LocalS3> {
  const { port = 0, directory: given } = options;
  let S3rver: new (options: Record<string, unknown>) => S3rverInstance;
  try {
    S3rver = (await import('@20minutes/s3rver')).default as unknown as typeof S3rver;
  } catch (err) {
    throw new Error(
      'no S3 endpoint configured (S3_ENDPOINT) and the local S3 server @20minutes/s3rver is not installed; ' +
        'run `npm ci` in the project, or set S3_ENDPOINT to a MinIO or S3 endpoint',
      { cause: err },
    );
  }
  const directory = given ?? (await mkdtemp(join(tmpdir(), 'fleet-s3-')));
  const server = new S3rver({ port, address: '127.0.0.1', silent: true, directory });
  const address = await server.run();
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    directory,
    accessKey: LOCAL_S3_ACCESS_KEY,
    secretKey: LOCAL_S3_SECRET_KEY,
    async stop(stopOptions = {}) {
      if (!stopped) {
        stopped = true;
        const closing = server.close();
        // close() waits for open connections; a long download would keep the server reachable until it ends.
        server.httpServer?.closeAllConnections();
        await closing;
      }
      if (!stopOptions.keepData && given === undefined) await rm(directory, { recursive: true, force: true });
    },
  };
}
