import { startLocalS3 } from '../local/s3-server.ts';
import { PatchBucket } from '../storage/bucket.ts';
import { CliError, EXIT } from './errors.ts';

export interface LocalS3Options {
  port: string;
  bucket?: string;
  dir?: string;
}

/** The bucket name rule that loadConfig applies to S3_BUCKET. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function checkOptions(options: LocalS3Options): { port: number; bucket: string } {
  const port = Number(options.port);
  if (!/^\d+$/.test(options.port) || port > 65535) {
    throw new CliError(`invalid --port ${JSON.stringify(options.port)}: expected a whole number from 0 to 65535`, EXIT.usage);
  }
  const bucket = options.bucket ?? (process.env.S3_BUCKET || 'fleet-patches');
  if (!BUCKET_NAME.test(bucket)) {
    throw new CliError(
      `invalid bucket name ${JSON.stringify(bucket)}: use 3 to 63 characters from a-z 0-9 . -, starting and ending with a letter or digit`,
      EXIT.usage,
    );
  }
  return { port, bucket };
}

/**
 * `fleet local-s3`: runs the development S3 server (s3rver) on 127.0.0.1 with the patch bucket until Ctrl-C,
 * so that `fleet serve` can run on one machine. It prints the S3 variables for `fleet serve` on stdout.
 */
export async function runLocalS3(options: LocalS3Options): Promise<void> {
  const { port, bucket: bucketName } = checkOptions(options);
  let s3;
  try {
    s3 = await startLocalS3({ port, ...(options.dir ? { directory: options.dir } : {}) });
  } catch (err) {
    throw new CliError(`failed to start the local S3 server on 127.0.0.1:${port}: ${(err as Error).message}`, EXIT.failure);
  }

  const bucket = new PatchBucket({
    endpoint: s3.endpoint,
    publicEndpoint: s3.endpoint,
    region: process.env.S3_REGION || 'us-east-1',
    bucket: bucketName,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
  });
  try {
    await bucket.ensureBucket();
  } finally {
    bucket.destroy();
  }

  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  process.stderr.write(
    `local S3 server (s3rver, for local use only) on ${s3.endpoint} with bucket ${bucketName}, objects in ${s3.directory}\n` +
      `${options.dir ? 'the folder is kept' : 'the folder is deleted'} when it stops; press Ctrl-C to stop\n`,
  );
  process.stdout.write(
    [
      `export S3_ENDPOINT=${s3.endpoint}`,
      `export S3_ACCESS_KEY=${s3.accessKey}`,
      `export S3_SECRET_KEY=${s3.secretKey}`,
      `export S3_BUCKET=${bucketName}`,
    ].join('\n') + '\n',
  );
  await stopped;
  await s3.stop();
}
