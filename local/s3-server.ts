import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

export const LOCAL_S3_ACCESS_KEY = 'S3RVER';
export const LOCAL_S3_SECRET_KEY = 'S3RVER';

export interface LocalS3 {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  stop(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/**
 * Starts an S3-compatible server (s3rver, from the dev dependencies) on 127.0.0.1 with its files in a fresh
 * temporary folder. For the demo, the tests and the benchmarks; production uses MinIO or S3.
 * s3rver checks SigV4 signatures, so expired or tampered signed URLs are rejected as they would be by MinIO.
 */
export async function startLocalS3(port = 0): Promise<LocalS3> {
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
  const directory = await mkdtemp(join(tmpdir(), 'fleet-s3-'));
  const server = new S3rver({ port, address: '127.0.0.1', silent: true, directory });
  const address = await server.run();
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    accessKey: LOCAL_S3_ACCESS_KEY,
    secretKey: LOCAL_S3_SECRET_KEY,
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
