import { createHash } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NotFound,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Client as MinioClient } from 'minio';
import { DownloadUrlSigner } from './url-signer.ts';

export interface BucketConfig {
  /** Endpoint the backend uses, e.g. http://minio:9000 inside a cluster. */
  endpoint: string;
  /** Endpoint devices use; signed URLs are bound to this host. */
  publicEndpoint: string;
  region: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  /** A store call that sends or receives nothing for this long fails; 60 s when absent. */
  requestTimeoutMs?: number;
}

const REQUEST_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 5_000;

export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

export interface StoredObject {
  key: string;
  size: number;
  sha256: string;
  etag: string;
}

export class PatchExistsError extends Error {
  readonly code = 'patch_exists';
  constructor(readonly key: string) {
    super(`patch ${key} already exists in the bucket; patch files are immutable, upload under a new name`);
  }
}

function s3Client(endpoint: string, config: BucketConfig): S3Client {
  return new S3Client({
    endpoint,
    region: config.region,
    credentials: { accessKeyId: config.accessKey, secretAccessKey: config.secretKey },
    forcePathStyle: true,
    // Streamed bodies otherwise go out as aws-chunked with a CRC32 trailer, which S3-compatible servers other
    // than AWS may reject or store with the framing inside the object.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Without limits a store that accepts the connection and then stalls would hold a device's queue for good.
    requestHandler: {
      connectionTimeout: CONNECT_TIMEOUT_MS,
      requestTimeout: config.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
      // Without this flag, this handler version logs a warning at the timeout and lets the request run on.
      throwOnRequestTimeout: true,
    },
  });
}

function minioClient(config: BucketConfig): MinioClient {
  const url = new URL(config.endpoint);
  return new MinioClient({
    endPoint: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    useSSL: url.protocol === 'https:',
    accessKey: config.accessKey,
    secretKey: config.secretKey,
    region: config.region,
    pathStyle: true,
  });
}

/** Counts and hashes bytes as they pass. */
class Sha256Meter extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly onBytes?: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void) {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    done(null, chunk);
  }
}

/**
 * The patch bucket. The AWS SDK does object reads and writes; the minio client does the bucket calls (create,
 * list) because it signs them in the form every S3-compatible server accepts. Download URLs are signed by
 * DownloadUrlSigner, because the SDK's presigner cost about 0.5 ms of CPU per URL and a release signs one
 * URL per device.
 */
export class PatchBucket {
  private readonly s3: S3Client;
  private readonly signer: DownloadUrlSigner;
  /** The URL signDownload returned last, per object key. */
  private readonly lastSigned = new Map<string, { url: string; signedAtS: number; ttlSeconds: number }>();
  private readonly minio: MinioClient;

  private observer: ((operation: string, seconds: number, ok: boolean) => void) | null = null;
  private now: () => number = Date.now;

  /** Reports every bucket call with its duration in seconds; the runtime feeds it into its metrics. */
  observe(observer: (operation: string, seconds: number, ok: boolean) => void): void {
    this.observer = observer;
  }

  private async timed<T>(operation: string, work: () => Promise<T>): Promise<T> {
    if (!this.observer) return work();
    const started = performance.now();
    try {
      const result = await work();
      this.observer(operation, (performance.now() - started) / 1000, true);
      return result;
    } catch (err) {
      this.observer(operation, (performance.now() - started) / 1000, false);
      throw err;
    }
  }

  constructor(readonly config: BucketConfig) {
    this.s3 = s3Client(config.endpoint, config);
    this.signer = new DownloadUrlSigner(config);
    this.minio = minioClient(config);
  }

  get name(): string {
    return this.config.bucket;
  }

  async ensureBucket(): Promise<void> {
    if (!(await this.minio.bucketExists(this.config.bucket))) {
      await this.minio.makeBucket(this.config.bucket, this.config.region);
    }
  }

  /** Throws when the bucket cannot be reached; used by readiness checks. */
  async ping(): Promise<void> {
    return this.timed('ping', async () => {
      if (!(await this.minio.bucketExists(this.config.bucket))) {
        throw new Error(`bucket ${this.config.bucket} does not exist`);
      }
    });
  }

  async head(key: string): Promise<{ size: number; etag: string; sha256: string | null } | null> {
    return this.timed('head', async () => {
      try {
        const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: key }));
        return {
          size: Number(out.ContentLength ?? 0),
          etag: (out.ETag ?? '').replaceAll('"', ''),
          sha256: out.Metadata?.sha256 ?? null,
        };
      } catch (err) {
        if (err instanceof NotFound || (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404)) {
          return null;
        }
        throw err;
      }
    });
  }

  /**
   * Streams `body` into the bucket under `key` and computes its sha256 on the way in. A key that already
   * exists is rejected with PatchExistsError: patch content never changes under the same name.
   * NOTE: two uploads of the same new key at the same moment both pass the existence check; the catalog
   * still binds the id to the first sha256 recorded, and the second upload then fails with a conflict.
   */
  async upload(
    key: string,
    body: Readable,
    size: number,
    onBytes?: (bytes: number) => void,
  ): Promise<StoredObject> {
    if (await this.head(key)) throw new PatchExistsError(key);
    const meter = new Sha256Meter(onBytes);
    const pass = new PassThrough();
    const piping = pipeline(body, meter, pass);
    const put = this.s3.send(
      new PutObjectCommand({
        Bucket: this.config.bucket,
        Key: key,
        Body: pass,
        ContentLength: size,
        ContentType: 'application/octet-stream',
      }),
    );
    const [, out] = await Promise.all([piping, put]);
    if (meter.bytes !== size) {
      throw new Error(`upload of ${key} sent ${meter.bytes} bytes but ${size} were announced`);
    }
    return { key, size, sha256: meter.hash.digest('hex'), etag: (out.ETag ?? '').replaceAll('"', '') };
  }

  /** Reads a whole object and returns its sha256; used for objects put into the bucket by other tools. */
  async hashObject(key: string): Promise<{ sha256: string; size: number }> {
    return this.timed('hash', async () => {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }));
      const meter = new Sha256Meter();
      const sink = new PassThrough();
      sink.resume();
      await pipeline(out.Body as Readable, meter, sink);
      return { sha256: meter.hash.digest('hex'), size: meter.bytes };
    });
  }

  /** Writes a small object whole, replacing any object under the same key; e.g. a detached signature. */
  async putSmall(key: string, text: string): Promise<void> {
    return this.timed('put', async () => {
      await this.s3.send(
        new PutObjectCommand({ Bucket: this.config.bucket, Key: key, Body: text, ContentType: 'application/json' }),
      );
    });
  }

  async remove(key: string): Promise<void> {
    return this.timed('remove', async () => {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: key }));
    });
  }

  /** Reads a small object whole (at most `maxBytes`), e.g. a detached signature; null when it does not exist. */
  async readSmall(key: string, maxBytes: number): Promise<string | null> {
    const head = await this.head(key);
    if (!head) return null;
    if (head.size > maxBytes) throw new Error(`object ${key} is ${head.size} bytes, more than the ${maxBytes} expected`);
    const out = await this.s3.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }));
    return (await out.Body?.transformToString('utf8')) ?? '';
  }

  /**
   * Sets the clock that download URLs are signed with. The replica passes the Redis clock, because the store
   * judges a URL's expiry by its own clock, not by the replica's.
   */
  useClock(now: () => number): void {
    this.now = now;
  }

  /**
   * Signs a GET URL for the endpoint devices use, valid for `ttlSeconds` from now on the clock set by useClock.
   * A URL names no device, and SigV4 signs whole seconds, so every URL for one key and lifetime signed within
   * the same second is the same string. The last one per key is therefore reused within its second.
   */
  signDownload(key: string, ttlSeconds: number): { url: string; expiresAt: number } {
    const started = performance.now();
    const signedAtS = Math.floor(this.now() / 1000);
    const expiresAt = (signedAtS + ttlSeconds) * 1000;
    const last = this.lastSigned.get(key);
    if (last?.signedAtS === signedAtS && last.ttlSeconds === ttlSeconds) return { url: last.url, expiresAt };
    const url = this.signer.sign(key, signedAtS * 1000, ttlSeconds);
    this.lastSigned.set(key, { url, signedAtS, ttlSeconds });
    this.observer?.('sign', (performance.now() - started) / 1000, true);
    return { url, expiresAt };
  }

  /** Lists every object in the bucket, in key order. */
  async list(): Promise<ObjectInfo[]> {
    return this.timed('list', async () => {
      const objects: ObjectInfo[] = [];
      const stream = this.minio.listObjectsV2(this.config.bucket, '', true);
      for await (const item of stream as AsyncIterable<{ name?: string; size: number; etag: string; lastModified: Date }>) {
        if (!item.name) continue;
        objects.push({ key: item.name, size: item.size, etag: item.etag, lastModified: item.lastModified });
      }
      return objects;
    });
  }

  destroy(): void {
    this.s3.destroy();
  }
}
