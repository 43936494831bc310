/**
 * The patch store of the benchmarks: the project's local S3-compatible server (s3rver) in a process of its
 * own, so its CPU time is neither the harness' nor the backend's and it can be pinned like the other helpers.
 */
import { startLocalS3 } from '../../local/s3-server.ts';
import { serveCommands } from '../lib/worker.ts';

export type S3StoreCommands = Record<string, never>;

const store = await startLocalS3();
serveCommands<S3StoreCommands>(
  {},
  { endpoint: store.endpoint, accessKey: store.accessKey, secretKey: store.secretKey },
  () => store.stop(),
);
