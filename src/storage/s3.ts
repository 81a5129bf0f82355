import { createHash } from 'node:crypto';
import type { S3Client, S3ClientConfig, BucketLocationConstraint, CompletedPart, StorageClass } from '@aws-sdk/client-s3';
import { ExitCode, LifeboatError, NotFoundError, errorMessage } from '../errors.js';
import { type FileType, type ObjectInfo, type Storage, objectPath, typeDir } from './types.js';
import {
  AppendOnlyError,
  ReadOnlyStorageError,
  StorageTimeoutError,
  type StorageTimeouts,
  formatMs,
  resolveTimeouts,
  storageCall,
} from './retry.js';

// The SDK prints a multi-line "NodeVersionSupportWarning" on Node < 22 on the first
// client construction. It is noise for a CLI user (we support Node 20), so opt out
// unless the user has set the variable explicitly.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// The SDK is loaded on first use: it costs ~150 ms of startup, which every CLI
// invocation on a local repository would otherwise pay.
type Sdk = typeof import('@aws-sdk/client-s3');
let sdkPromise: Promise<Sdk> | undefined;
const loadSdk = (): Promise<Sdk> => (sdkPromise ??= import('@aws-sdk/client-s3'));

const MiB = 1024 * 1024;
/** S3 limits: parts are 5 MiB..5 GiB (except the last), at most 10,000 parts. */
const MIN_PART_SIZE = 5 * MiB;
const MAX_PARTS = 10_000;

export interface S3ObjectLock {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  /** Retention period in days, counted from the moment each object is written. */
  days: number;
}

export interface S3Options {
  bucket: string;
  /** Key prefix inside the bucket: '' or 'some/path/' (normalized to end with '/'). */
  prefix?: string;
  /** Custom endpoint URL (MinIO, Ceph, ...). Undefined: the AWS endpoint for `region`. */
  endpoint?: string;
  /** Default 'us-east-1'. */
  region?: string;
  /** Path-style addressing (https://host/bucket/key). Defaults to true when a custom endpoint is set. */
  forcePathStyle?: boolean;
  /**
   * Explicit credentials. When absent the SDK default chain is used: the
   * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN environment
   * variables first, then shared config files, SSO, instance metadata, ...
   * Credentials are never logged and never part of `location`.
   */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Total attempts per request including the first one. Overrides timeouts.retries (= maxAttempts - 1). */
  maxAttempts?: number;
  /**
   * Connect timeout and per-attempt deadline of every request, and retries
   * (src/storage/retry.ts). Default: connect 30 s, request 2 min, 3 retries.
   */
  timeouts?: Partial<StorageTimeouts>;
  /** Aborting it ends every in-flight and later request at once (job timeout, shutdown). */
  signal?: AbortSignal;
  /** Objects larger than this use a multipart upload. Default 8 MiB. */
  multipartThreshold?: number;
  /** Part size for multipart uploads (min 5 MiB; grown automatically to stay under 10,000 parts). Default 8 MiB. */
  partSize?: number;
  /** Parts uploaded concurrently. Default 4. */
  partConcurrency?: number;
  /**
   * S3 Object Lock (WORM) retention for everything except lock files: each PUT of a
   * data/index/snapshot/key/config object carries x-amz-object-lock-mode and
   * x-amz-object-lock-retain-until-date = now + days.
   *
   * Requires a bucket created with Object Lock enabled (which implies versioning);
   * `create()` enables it when it creates the bucket itself. On such a bucket
   * deleting an object only adds a delete marker: the locked versions stay until
   * their retention ends, which is the point (ransomware / operator error cannot
   * destroy backups). Lock files are deliberately not retained: they are rewritten
   * and removed constantly. Configure a lifecycle rule expiring non-current
   * versions to reclaim space after retention ends. COMPLIANCE mode cannot be
   * shortened by anyone, including the root account.
   */
  objectLock?: S3ObjectLock;
  /**
   * Flexible-checksum behaviour of the SDK. Default 'WHEN_REQUIRED': uploads carry
   * a Content-MD5 header computed by us instead (verified by AWS and by every
   * S3-compatible server we know of; also what Object Lock uploads require), and
   * the SDK does not add CRC32 trailers/headers that some S3-compatible servers
   * reject. Set 'WHEN_SUPPORTED' to additionally get SDK CRC checksums.
   */
  checksums?: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED';
  /** Human-readable location override (must not contain secrets). */
  location?: string;
  /**
   * Storage class of new objects except locks (STANDARD_IA, GLACIER_IR, ...;
   * default: the bucket's default, STANDARD on AWS). Classes that need a restore
   * before reading (GLACIER, DEEP_ARCHIVE) are refused: Lifeboat reads index,
   * snapshot and pack objects back to verify and restore.
   */
  storageClass?: string;
  /**
   * The credentials are append-only (see docs: IAM policy): a refused DELETE or
   * overwrite is reported as AppendOnlyError instead of "read-only credentials".
   */
  appendOnly?: boolean;
}

export const S3_STORAGE_CLASSES = ['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'REDUCED_REDUNDANCY', 'EXPRESS_ONEZONE'] as const;

/** Key for an object: prefix + shared layout. */
function normalizePrefix(prefix: string | undefined): string {
  const p = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return p ? `${p}/` : '';
}

/** Remove user:password@ from a URL string (best effort; never throws). */
export function stripUrlCredentials(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//');
  }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
  'EPROTO',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  Code?: string;
  errors?: SdkError[];
  $metadata?: { httpStatusCode?: number };
}

function networkCode(err: unknown): string | undefined {
  const e = err as SdkError;
  if (!e || typeof e !== 'object') return undefined;
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  if (e.name === 'TimeoutError') return 'timeout';
  if (Array.isArray(e.errors)) {
    for (const sub of e.errors) {
      const c = networkCode(sub);
      if (c) return c;
    }
  }
  return undefined;
}

function statusOf(err: unknown): number | undefined {
  return (err as SdkError)?.$metadata?.httpStatusCode;
}

function codeOf(err: unknown): string {
  const e = err as SdkError;
  return e?.Code ?? e?.name ?? '';
}

/**
 * S3 (and S3-compatible) backend. Object key = prefix + objectPath(type, name),
 * so the layout is identical to a local repository directory and a repository can
 * be copied between backends with any S3 sync tool.
 *
 * Atomicity: a PUT (single or completed multipart upload) becomes visible all at
 * once, and S3 is strongly read-after-write consistent, so a reader never sees a
 * partial object.
 */
export class S3Storage implements Storage {
  readonly kind = 's3';
  /** LastModified is the server's time at the end of the upload. */
  readonly serverTimes = true;
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  /** Endpoint shown in error messages (credentials stripped). */
  readonly endpointDescription: string;
  private readonly clientConfig: S3ClientConfig;
  private api?: Promise<{ sdk: Sdk; client: S3Client }>;
  readonly timeouts: StorageTimeouts;
  private readonly signal: AbortSignal | undefined;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly objectLock: S3ObjectLock | undefined;
  private readonly customEndpoint: boolean;
  private readonly storageClass: string | undefined;
  readonly appendOnly: boolean;

  constructor(opts: S3Options) {
    if (!opts.bucket) throw new LifeboatError('S3 storage: no bucket given', ExitCode.USAGE);
    this.bucket = opts.bucket;
    this.prefix = normalizePrefix(opts.prefix);
    this.region = opts.region || 'us-east-1';
    this.customEndpoint = !!opts.endpoint;
    const endpoint = opts.endpoint?.replace(/\/+$/, '');
    this.endpointDescription = endpoint ? stripUrlCredentials(endpoint) : `https://s3.${this.region}.amazonaws.com`;
    const shownPrefix = this.prefix.replace(/\/$/, '');
    this.location =
      opts.location ??
      (endpoint
        ? `s3:${this.endpointDescription}/${this.bucket}${shownPrefix ? `/${shownPrefix}` : ''}`
        : `s3://${this.bucket}${shownPrefix ? `/${shownPrefix}` : ''}`);

    this.timeouts = resolveTimeouts({
      ...opts.timeouts,
      ...(opts.maxAttempts !== undefined ? { retries: Math.max(1, Math.floor(opts.maxAttempts)) - 1 } : {}),
    });
    this.signal = opts.signal;
    this.multipartThreshold = Math.max(MIN_PART_SIZE, opts.multipartThreshold ?? 8 * MiB);
    this.partSize = Math.max(MIN_PART_SIZE, opts.partSize ?? 8 * MiB);
    this.partConcurrency = Math.max(1, Math.floor(opts.partConcurrency ?? 4));
    if (opts.objectLock) {
      const { mode, days } = opts.objectLock;
      if (mode !== 'GOVERNANCE' && mode !== 'COMPLIANCE') {
        throw new LifeboatError(`S3 object lock mode must be GOVERNANCE or COMPLIANCE, got "${String(mode)}"`, ExitCode.USAGE);
      }
      if (!Number.isFinite(days) || days <= 0) {
        throw new LifeboatError(`S3 object lock retention must be a positive number of days, got ${String(days)}`, ExitCode.USAGE);
      }
      this.objectLock = { mode, days };
    }
    if (opts.storageClass !== undefined) {
      if (!(S3_STORAGE_CLASSES as readonly string[]).includes(opts.storageClass)) {
        throw new LifeboatError(
          `S3 storage class "${opts.storageClass}" is not supported: use one of ${S3_STORAGE_CLASSES.join(', ')} (archive classes such as GLACIER and DEEP_ARCHIVE need a restore before every read)`,
          ExitCode.USAGE,
        );
      }
      this.storageClass = opts.storageClass;
    }
    this.appendOnly = opts.appendOnly ?? false;
    if ((opts.accessKeyId && !opts.secretAccessKey) || (!opts.accessKeyId && opts.secretAccessKey)) {
      throw new LifeboatError('S3 credentials: accessKeyId and secretAccessKey must be given together', ExitCode.USAGE);
    }

    const checksums = opts.checksums ?? 'WHEN_REQUIRED';
    const config: S3ClientConfig = {
      region: this.region,
      forcePathStyle: opts.forcePathStyle ?? this.customEndpoint,
      // Retries, backoff and the per-request deadline are ours (storageCall), for
      // every backend alike; the SDK makes exactly one attempt per call.
      maxAttempts: 1,
      requestChecksumCalculation: checksums,
      responseChecksumValidation: checksums,
      // Our deadline (storageCall, an AbortSignal per attempt) ends every request
      // at timeouts.request; the SDK's own timers back it up a second later. In
      // @smithy/node-http-handler 4.x requestTimeout alone only logs a warning: it
      // fires only with throwOnRequestTimeout (checked against a server that
      // accepts and never answers); socketTimeout is an idle timeout and fires.
      requestHandler: {
        connectionTimeout: this.timeouts.connectMs,
        socketTimeout: this.timeouts.requestMs + 1000,
        requestTimeout: this.timeouts.requestMs + 1000,
        throwOnRequestTimeout: true,
      },
      ...(endpoint ? { endpoint } : {}),
      ...(opts.accessKeyId && opts.secretAccessKey
        ? {
            credentials: {
              accessKeyId: opts.accessKeyId,
              secretAccessKey: opts.secretAccessKey,
              ...(opts.sessionToken ? { sessionToken: opts.sessionToken } : {}),
            },
          }
        : {}),
    };
    this.clientConfig = config;
  }

  private connect(): Promise<{ sdk: Sdk; client: S3Client }> {
    return (this.api ??= loadSdk().then((sdk) => ({ sdk, client: new sdk.S3Client(this.clientConfig) })));
  }

  /**
   * One request through the shared deadline/retry wrapper. `fn` gets the
   * attempt's AbortSignal (pass it to client.send). Not idempotent: only
   * failures that happened before the request reached the server are retried.
   */
  private call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, idempotent = true): Promise<T> {
    return storageCall(
      {
        what,
        timeouts: this.timeouts,
        signal: this.signal,
        retryable: idempotent ? isTransient : notSent,
        isTimeout: (err) => networkCode(err) === 'timeout',
        timeoutMessage: (ms, w) =>
          `S3 endpoint ${this.endpointDescription} did not answer within ${formatMs(ms)} while ${w} (request timeout; set timeouts.request / LIFEBOAT_REQUEST_TIMEOUT to change it)`,
      },
      fn,
    );
  }

  /** A write was refused with AccessDenied: read-only credentials (or bucket policy). */
  private readOnly(err: unknown, what: string): LifeboatError {
    const code = codeOf(err);
    const denied = code === 'AccessDenied' || (statusOf(err) === 403 && (code === '' || code === 'Forbidden' || code === 'Unknown' || code === 'Error'));
    if (denied && /object lock/i.test(errorMessage(err))) {
      return new AppendOnlyError(`S3 refused ${what} in bucket "${this.bucket}": the object is protected by Object Lock retention (prune must wait until retention ends)`, { cause: err });
    }
    if (denied && this.appendOnly) {
      return new AppendOnlyError(
        `S3 refused ${what} in bucket "${this.bucket}" at ${this.endpointDescription} (${code || 'HTTP 403'}): the credentials are append-only; run forget/prune from a trusted host with full credentials`,
        { cause: err },
      );
    }
    if (denied) {
      return new ReadOnlyStorageError(
        `S3 refused a write (${code || 'HTTP 403'}) while ${what} in bucket "${this.bucket}" at ${this.endpointDescription}: the credentials are read-only`,
        { cause: err },
      );
    }
    return this.fail(err, what);
  }

  private key(type: FileType, name: string): string {
    return this.prefix + objectPath(type, name);
  }

  private lockHeaders(type: FileType): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date; StorageClass?: StorageClass } {
    const cls = this.storageClass && type !== 'lock' ? { StorageClass: this.storageClass as StorageClass } : {};
    if (!this.objectLock || type === 'lock') return cls;
    return {
      ...cls,
      ObjectLockMode: this.objectLock.mode,
      ObjectLockRetainUntilDate: new Date(Date.now() + this.objectLock.days * 86_400_000),
    };
  }

  /** Translate an SDK error into a LifeboatError with a message a user can act on. */
  private fail(err: unknown, what: string): LifeboatError {
    if (err instanceof LifeboatError) return err;
    const net = networkCode(err);
    if (net === 'timeout' && /without establishing a connection/i.test(errorMessage(err))) {
      return new StorageTimeoutError(
        `cannot connect to S3 endpoint ${this.endpointDescription} within ${formatMs(this.timeouts.connectMs)} while ${what} (connect timeout; set timeouts.connect / LIFEBOAT_CONNECT_TIMEOUT to change it)`,
      );
    }
    if (net) {
      return new LifeboatError(
        `cannot reach S3 endpoint ${this.endpointDescription} while ${what} (${net}${net === 'timeout' ? '' : `: ${errorMessage(err)}`})`,
        ExitCode.FATAL,
        { cause: err },
      );
    }
    const code = codeOf(err);
    const status = statusOf(err);
    if (code === 'CredentialsProviderError') {
      return new LifeboatError(
        `no S3 credentials found while ${what}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or s3.accessKeyId / s3.secretAccessKey in the configuration)`,
        ExitCode.USAGE,
        { cause: err },
      );
    }
    if (code === 'NoSuchBucket') {
      return new LifeboatError(
        `S3 bucket "${this.bucket}" does not exist at ${this.endpointDescription} (while ${what}); run "lifeboat init" to create the repository`,
        ExitCode.NO_REPO,
        { cause: err },
      );
    }
    if (code === 'NoSuchKey' || code === 'NotFound' || status === 404) return new NotFoundError(`${what} (${this.location})`);
    if (
      status === 403 ||
      code === 'AccessDenied' ||
      code === 'InvalidAccessKeyId' ||
      code === 'SignatureDoesNotMatch' ||
      code === 'ExpiredToken' ||
      code === 'InvalidToken' ||
      code === 'Forbidden'
    ) {
      return new LifeboatError(
        `access denied by S3 (${code || `HTTP ${status}`}) while ${what} in bucket "${this.bucket}" at ${this.endpointDescription}: check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket policy`,
        ExitCode.FATAL,
        { cause: err },
      );
    }
    if (code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || status === 301) {
      return new LifeboatError(
        `S3 bucket "${this.bucket}" is not in region ${this.region} (${code || `HTTP ${status}`}): set AWS_REGION or s3.region to the bucket's region`,
        ExitCode.USAGE,
        { cause: err },
      );
    }
    if (code === 'BadDigest' || code === 'InvalidDigest' || code === 'XAmzContentSHA256Mismatch') {
      return new LifeboatError(`S3 rejected corrupted upload data while ${what} (${code}); the data was not stored`, ExitCode.FATAL, { cause: err });
    }
    const detail = errorMessage(err);
    return new LifeboatError(
      `S3 error while ${what} (${this.location}): ${code && code !== 'Error' ? `${code}: ` : ''}${detail}${status ? ` (HTTP ${status})` : ''}`,
      ExitCode.FATAL,
      { cause: err },
    );
  }

  /**
   * Read the bucket's Object Lock configuration and compare it with the
   * repository's `objectLock` setting. Fails loudly when the setting promises
   * retention the bucket does not enforce (lock not enabled). Without the
   * setting, a bucket that does enforce a default retention is reported (prune
   * cannot delete until it ends).
   */
  async checkImmutability(): Promise<string[]> {
    const { sdk, client } = await this.connect();
    const what = `reading the Object Lock configuration of bucket "${this.bucket}"`;
    let enabled = false;
    let rule: { Mode?: string; Days?: number; Years?: number } | undefined;
    try {
      const res = await this.call(what, (abortSignal) => client.send(new sdk.GetObjectLockConfigurationCommand({ Bucket: this.bucket }), { abortSignal }));
      enabled = res.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
      rule = res.ObjectLockConfiguration?.Rule?.DefaultRetention;
    } catch (err) {
      const code = codeOf(err);
      if (code !== 'ObjectLockConfigurationNotFoundError' && code !== 'NotImplemented' && statusOf(err) !== 404) throw this.fail(err, what);
    }
    const days = rule ? (rule.Days ?? 0) + (rule.Years ?? 0) * 365 : 0;
    const def = rule?.Mode ? `default retention ${rule.Mode} ${days} days` : 'no default retention';
    if (!this.objectLock) {
      return [enabled ? `bucket "${this.bucket}" has Object Lock enabled (${def}); the repository sets no per-object retention` : `bucket "${this.bucket}": no Object Lock (not configured for this repository)`];
    }
    const want = `${this.objectLock.mode} ${this.objectLock.days} days`;
    if (!enabled) {
      throw new LifeboatError(
        `bucket "${this.bucket}" at ${this.endpointDescription} does not enforce Object Lock, but the repository configuration promises ${want} retention: create the bucket with Object Lock enabled (it cannot be added to an existing bucket on most servers) or remove s3.objectLock`,
        ExitCode.FATAL,
      );
    }
    const lines = [`bucket "${this.bucket}" enforces Object Lock (${def}); new objects get ${want} retention`];
    if (rule?.Mode && (days < this.objectLock.days || (rule.Mode === 'GOVERNANCE' && this.objectLock.mode === 'COMPLIANCE'))) {
      lines.push(`note: the bucket's default retention (${rule.Mode} ${days} days) is weaker than the repository's (${want}); Lifeboat sets retention on each object itself`);
    }
    return lines;
  }

  async create(): Promise<void> {
    await this.createBucket();
    if (this.objectLock) await this.checkImmutability();
  }

  private async createBucket(): Promise<void> {
    const { sdk, client } = await this.connect();
    try {
      await this.call(`checking bucket "${this.bucket}"`, (abortSignal) => client.send(new sdk.HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }));
      return;
    } catch (err) {
      if (statusOf(err) !== 404 && codeOf(err) !== 'NotFound' && codeOf(err) !== 'NoSuchBucket') {
        throw this.fail(err, `checking bucket "${this.bucket}"`);
      }
    }
    try {
      const constraint = this.region !== 'us-east-1' ? this.region : undefined;
      await this.call(`creating bucket "${this.bucket}"`, (abortSignal) =>
        client.send(
          new sdk.CreateBucketCommand({
            Bucket: this.bucket,
            ...(constraint ? { CreateBucketConfiguration: { LocationConstraint: constraint as BucketLocationConstraint } } : {}),
            ...(this.objectLock ? { ObjectLockEnabledForBucket: true } : {}),
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      const code = codeOf(err);
      if (code === 'BucketAlreadyOwnedByYou') return;
      if (code === 'BucketAlreadyExists') {
        throw new LifeboatError(
          `S3 bucket name "${this.bucket}" is already taken by another account; choose a different bucket name`,
          ExitCode.FATAL,
          { cause: err },
        );
      }
      throw this.fail(err, `creating bucket "${this.bucket}"`);
    }
  }

  async save(type: FileType, name: string, data: Uint8Array): Promise<void> {
    const key = this.key(type, name);
    if (data.length > this.multipartThreshold) {
      await this.saveMultipart(type, key, data);
      return;
    }
    const { sdk, client } = await this.connect();
    const md5 = md5b64(data);
    try {
      await this.call(`saving ${key}`, (abortSignal) =>
        client.send(
          new sdk.PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: data,
            ContentLength: data.length,
            ContentMD5: md5,
            ContentType: 'application/octet-stream',
            ...this.lockHeaders(type),
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      throw this.readOnly(err, `saving ${key}`);
    }
  }

  /** Conditional PUT (If-None-Match: *): supported by AWS S3, MinIO, R2; a 412 means another writer won. */
  async saveNew(type: FileType, name: string, data: Uint8Array): Promise<boolean> {
    const key = this.key(type, name);
    if (await this.exists(type, name)) return false;
    const { sdk, client } = await this.connect();
    try {
      // Not idempotent: after a timeout the first PUT may have succeeded, and a
      // retry would then answer "exists" for our own object.
      await this.call(
        `creating ${key}`,
        (abortSignal) =>
          client.send(
            new sdk.PutObjectCommand({
              Bucket: this.bucket,
              Key: key,
              Body: data,
              ContentLength: data.length,
              ContentMD5: md5b64(data),
              ContentType: 'application/octet-stream',
              IfNoneMatch: '*',
              ...this.lockHeaders(type),
            }),
            { abortSignal },
          ),
        false,
      );
      return true;
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.$metadata?.httpStatusCode === 412 || e.name === 'PreconditionFailed' || e.$metadata?.httpStatusCode === 409) return false;
      throw this.readOnly(err, `creating ${key}`);
    }
  }

  private async saveMultipart(type: FileType, key: string, data: Uint8Array): Promise<void> {
    const { sdk, client } = await this.connect();
    let partSize = this.partSize;
    while (Math.ceil(data.length / partSize) > MAX_PARTS) partSize *= 2;
    let uploadId: string | undefined;
    try {
      const created = await this.call(`starting the upload of ${key}`, (abortSignal) =>
        client.send(
          new sdk.CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            ContentType: 'application/octet-stream',
            ...this.lockHeaders(type),
          }),
          { abortSignal },
        ),
      );
      uploadId = created.UploadId;
      if (!uploadId) throw new LifeboatError(`S3 did not return an upload id for ${key}`);
      const count = Math.ceil(data.length / partSize);
      const parts: CompletedPart[] = new Array(count);
      let next = 0;
      let failed = false;
      const worker = async () => {
        while (next < count && !failed) {
          const i = next++;
          const body = data.subarray(i * partSize, Math.min(data.length, (i + 1) * partSize));
          const md5 = md5b64(body);
          const res = await this.call(`uploading part ${i + 1} of ${key}`, (abortSignal) =>
            client.send(
              new sdk.UploadPartCommand({
                Bucket: this.bucket,
                Key: key,
                UploadId: uploadId,
                PartNumber: i + 1,
                Body: body,
                ContentLength: body.length,
                ContentMD5: md5,
              }),
              { abortSignal },
            ),
          );
          if (!res.ETag) throw new LifeboatError(`S3 did not return an ETag for part ${i + 1} of ${key}`);
          parts[i] = { PartNumber: i + 1, ETag: res.ETag };
        }
      };
      // allSettled: stop handing out parts on the first failure, but let in-flight
      // parts finish before aborting the upload.
      const results = await Promise.allSettled(
        Array.from({ length: Math.min(this.partConcurrency, count) }, () =>
          worker().catch((err: unknown) => {
            failed = true;
            throw err;
          }),
        ),
      );
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (rejected) throw rejected.reason;
      await this.call(`completing the upload of ${key}`, (abortSignal) =>
        client.send(
          new sdk.CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      if (uploadId) {
        // Best effort: an aborted upload would otherwise keep its parts (and cost) forever.
        await this.call(`aborting the upload of ${key}`, (abortSignal) =>
          client.send(new sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal }),
        ).catch(() => {});
      }
      throw this.readOnly(err, `saving ${key} (multipart upload)`);
    }
  }

  async load(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const { sdk, client } = await this.connect();
    const key = this.key(type, name);
    if (range) {
      if (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length < 0) {
        throw new LifeboatError(`invalid range for ${key}: offset ${range.offset}, length ${range.length}`);
      }
      if (range.length === 0) {
        const st = await this.stat(type, name);
        if (range.offset > st.size) throw shortRead(key, range, 0);
        return Buffer.alloc(0);
      }
    }
    const what = `reading ${key}`;
    try {
      // One attempt = the request and the whole body, under one deadline; a
      // connection that breaks while the body streams is retried like any other
      // transient failure.
      return await this.call(what, async (abortSignal) => {
        const res = await client.send(
          new sdk.GetObjectCommand({
            Bucket: this.bucket,
            Key: key,
            ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}),
          }),
          { abortSignal },
        );
        if (!res.Body) throw new LifeboatError(`S3 returned no body for ${key}`);
        const u8 = await res.Body.transformToByteArray();
        let buf = Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
        if (res.ContentLength !== undefined && res.ContentLength !== buf.length) {
          throw Object.assign(new Error(`connection closed after ${buf.length} of ${res.ContentLength} bytes`), { code: 'ECONNRESET' });
        }
        if (!range) return buf;
        if (!res.ContentRange) {
          // The server ignored the Range header and sent the whole object.
          buf = buf.subarray(range.offset, range.offset + range.length);
        } else {
          const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.ContentRange);
          if (!m || Number(m[1]) !== range.offset) {
            throw new LifeboatError(`S3 returned range "${res.ContentRange}" for ${key}, expected bytes starting at ${range.offset}`);
          }
          // Some servers (s3rver for "bytes=0-0") send more than asked for; the start is right, so trim.
          if (buf.length > range.length) buf = buf.subarray(0, range.length);
        }
        if (buf.length !== range.length) throw shortRead(key, range, buf.length);
        return buf;
      });
    } catch (err) {
      if (range && (codeOf(err) === 'InvalidRange' || statusOf(err) === 416)) throw shortRead(key, range, 0);
      throw this.fail(err, what);
    }
  }

  private async head(type: FileType, name: string, verb = 'stat'): Promise<number> {
    const { sdk, client } = await this.connect();
    const key = this.key(type, name);
    try {
      const res = await this.call(`${verb} ${key}`, (abortSignal) =>
        client.send(new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }),
      );
      return res.ContentLength ?? 0;
    } catch (err) {
      throw this.fail(err, `${verb} ${key}`);
    }
  }

  async stat(type: FileType, name: string): Promise<ObjectInfo> {
    return { name, size: await this.head(type, name) };
  }

  async exists(type: FileType, name: string): Promise<boolean> {
    try {
      await this.head(type, name, 'checking');
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  async remove(type: FileType, name: string): Promise<void> {
    const { sdk, client } = await this.connect();
    const key = this.key(type, name);
    // DeleteObject succeeds for missing keys; the contract wants NotFoundError.
    await this.head(type, name, 'removing');
    try {
      await this.call(`removing ${key}`, (abortSignal) => client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }));
    } catch (err) {
      throw this.readOnly(err, `removing ${key}`);
    }
  }

  async list(type: FileType): Promise<ObjectInfo[]> {
    const { sdk, client } = await this.connect();
    if (type === 'config') {
      try {
        return [await this.stat('config', '')];
      } catch (err) {
        if (err instanceof NotFoundError) return [];
        throw err;
      }
    }
    const dir = `${this.prefix}${typeDir(type)}/`;
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      let res;
      try {
        const t = token;
        res = await this.call(`listing ${dir}`, (abortSignal) =>
          client.send(
            new sdk.ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: dir,
              // data objects live in data/xx/; everything else is flat
              ...(type === 'data' ? {} : { Delimiter: '/' }),
              ...(t ? { ContinuationToken: t } : {}),
            }),
            { abortSignal },
          ),
        );
      } catch (err) {
        throw this.fail(err, `listing ${dir}`);
      }
      for (const obj of res.Contents ?? []) {
        if (!obj.Key || obj.Key.endsWith('/')) continue; // "directory" markers made by some tools
        const name = obj.Key.slice(obj.Key.lastIndexOf('/') + 1);
        if (!name) continue;
        out.push({ name, size: obj.Size ?? 0, ...(obj.LastModified ? { mtime: obj.LastModified } : {}) });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
      if (res.IsTruncated && !token) {
        throw new LifeboatError(`S3 listing of ${dir} was truncated but the server sent no continuation token`);
      }
    } while (token);
    return out;
  }

  async close(): Promise<void> {
    if (!this.api) return;
    const { client } = await this.api;
    client.destroy();
    this.api = undefined;
  }
}

function md5b64(data: Uint8Array): string {
  return createHash('md5').update(data).digest('base64');
}

function shortRead(key: string, range: { offset: number; length: number }, got: number): LifeboatError {
  return new LifeboatError(
    `short read of ${key}: wanted ${range.length} bytes at offset ${range.offset}, got ${got} (object is shorter)`,
  );
}

const RETRY_CODES = new Set([
  'SlowDown',
  'RequestTimeout',
  'InternalError',
  'ServiceUnavailable',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequests',
]);

/** Failures worth another attempt: network errors, timeouts, 5xx, throttling. */
function isTransient(err: unknown): boolean {
  if (err instanceof StorageTimeoutError) return true;
  if (err instanceof LifeboatError) return false; // our own verdicts (short read, bad range, ...)
  if (networkCode(err) !== undefined) return true;
  const status = statusOf(err);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  return RETRY_CODES.has(codeOf(err));
}

/** Failures where the request surely never reached the server (safe to retry a non-idempotent request). */
function notSent(err: unknown): boolean {
  const c = (err as SdkError)?.code;
  if (c === 'ECONNREFUSED' || c === 'ENOTFOUND' || c === 'EAI_AGAIN' || c === 'EHOSTUNREACH' || c === 'ENETUNREACH') return true;
  return codeOf(err) === 'SlowDown' || statusOf(err) === 503;
}
