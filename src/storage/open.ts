import type { S3Options } from './s3.js';
import type { Storage } from './types.js';
import type { StorageTimeouts } from './retry.js';
import { ConfigError, errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import { describeLocation } from './describe.js';
import { backendFor, backendKind, supportedForms, type ParsedLocation, type RcloneSettings } from './registry.js';
import type { SftpOptions } from './sftp.js';
import { LimitedStorage, type StorageLimits } from './limits.js';


/**
 * Repository locations (each scheme is a backend in storage/registry.ts):
 *
 *   /srv/backup, ./backup, backup     local directory (absolute or relative)
 *   local:/srv/backup                 local directory, explicit
 *   s3://bucket[/prefix]              AWS S3; endpoint override from AWS_ENDPOINT_URL_S3 /
 *                                     AWS_ENDPOINT_URL, region from AWS_REGION /
 *                                     AWS_DEFAULT_REGION (default us-east-1)
 *   s3:https://host[:port]/bucket[/prefix]
 *   s3:http://host[:port]/bucket[/prefix]
 *                                     S3-compatible server (MinIO, Ceph, ...), path-style
 *   s3:host[:port]/bucket[/prefix]    restic style, same as s3:https://host...
 *   rclone:REMOTE:PATH                any rclone remote (rclone serve restic --stdio)
 *   sftp:user@host:/path, sftp://user@host[:port]/path
 *                                     SFTP through rclone; host key checked against known_hosts
 *
 * Credentials never go in the location (it is printed and stored in snapshot
 * metadata): use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the config file.
 */
/** Schemes of other backup tools / protocols we do not support, so "sftp:host:/x" is not silently a local directory. */
const FOREIGN_SCHEMES = new Set([
  'ssh', 'rest', 'b2', 'azure', 'gs', 'gcs', 'swift', 'http', 'https', 'ftp', 'ftps', 'smb', 'file', 'webdav', 'minio',
]);

export function parseLocation(location: string, env: NodeJS.ProcessEnv = process.env): ParsedLocation {
  if (typeof location !== 'string' || location.trim() === '') {
    throw new ConfigError('empty repository location: give a directory path or an s3: URL');
  }
  if (location.includes('\0')) throw new ConfigError('invalid repository location: contains a NUL byte');

  if (location.startsWith('local:')) return backendKind('local').parse(location, env);

  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(location)?.[1];
  const backend = scheme && scheme.length > 1 ? backendFor(scheme) : undefined;
  if (backend && location.startsWith(`${scheme}:`)) return backend.parse(location, env);
  if (scheme && scheme.length > 1 && (FOREIGN_SCHEMES.has(scheme.toLowerCase()) || location.startsWith(`${scheme}://`))) {
    const hint =
      scheme.toLowerCase() === 'http' || scheme.toLowerCase() === 'https'
        ? ` (for an S3-compatible server write "s3:${describeLocation(location)}")`
        : ` (supported: ${supportedForms()}; for a directory whose name contains ":" write "./${describeLocation(location)}")`;
    throw new ConfigError(`unsupported repository location "${describeLocation(location)}": unknown scheme "${scheme}:"${hint}`);
  }
  return { kind: 'local', path: location };
}

export interface OpenStorageOptions {
  s3?: Partial<S3Options>;
  /** rclone program and extra flags (rclone: and sftp: locations). */
  rclone?: RcloneSettings;
  /** SFTP key and known_hosts files (sftp: locations). */
  sftp?: SftpOptions;
  /** Connect/request timeouts and retries (repository config `timeouts`); the environment overrides them. */
  timeouts?: Partial<StorageTimeouts>;
  /** Aborting it ends every in-flight and later request of the storage (job timeout, shutdown). */
  signal?: AbortSignal;
  /** Append-only: refuse deletes and overwrites (except locks) client-side; rclone/SFTP enforce it server-side too. */
  appendOnly?: boolean;
  /** Bandwidth (KiB/s) and concurrency limits of every backend (storage/limits.ts). */
  limits?: Omit<StorageLimits, 'appendOnly'>;
}

/**
 * Timeout overrides from the environment (they win over the configuration):
 * LIFEBOAT_CONNECT_TIMEOUT and LIFEBOAT_REQUEST_TIMEOUT (durations: 10s, 2m)
 * and LIFEBOAT_RETRIES (a count).
 */
export function timeoutsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<StorageTimeouts> {
  const out: Partial<StorageTimeouts> = {};
  const dur = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    try {
      return parseDuration(v.trim());
    } catch (err) {
      throw new ConfigError(`${name}=${v}: ${errorMessage(err)}`);
    }
  };
  const c = dur('LIFEBOAT_CONNECT_TIMEOUT');
  if (c !== undefined) out.connectMs = c;
  const r = dur('LIFEBOAT_REQUEST_TIMEOUT');
  if (r !== undefined) out.requestMs = r;
  const n = env.LIFEBOAT_RETRIES;
  if (n !== undefined && n !== '') {
    if (!/^\d+$/.test(n.trim()) || Number(n) > 20) throw new ConfigError(`LIFEBOAT_RETRIES=${n}: expected a whole number from 0 to 20`);
    out.retries = Number(n);
  }
  return out;
}

export function openStorage(location: string, opts: OpenStorageOptions = {}): Storage {
  const env = process.env;
  const parsed = parseLocation(location, env);
  const timeouts = { ...opts.timeouts, ...timeoutsFromEnv(env) };
  const appendOnly = opts.appendOnly || appendOnlyFromEnv(env);
  const inner = backendKind(parsed.kind).open(parsed, {
    env,
    timeouts,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.s3 ? { s3: opts.s3 } : {}),
    ...(opts.rclone ? { rclone: opts.rclone } : {}),
    ...(opts.sftp ? { sftp: opts.sftp } : {}),
    ...(appendOnly ? { appendOnly: true } : {}),
  });
  return new LimitedStorage(inner, { ...opts.limits, ...limitsFromEnv(env), ...(appendOnly ? { appendOnly: true } : {}) });
}

/** LIFEBOAT_APPEND_ONLY=1 (the CLI's --append-only): open every repository append-only. */
export function appendOnlyFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.LIFEBOAT_APPEND_ONLY;
  if (v === undefined || v === '' || v === '0' || v === 'false') return false;
  if (v === '1' || v === 'true') return true;
  throw new ConfigError(`LIFEBOAT_APPEND_ONLY=${v}: expected 1 or 0`);
}

/**
 * Limits from the environment (the CLI's --limit-upload / --limit-download set
 * them): LIFEBOAT_LIMIT_UPLOAD and LIFEBOAT_LIMIT_DOWNLOAD in KiB/s.
 */
export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): Omit<StorageLimits, 'appendOnly'> {
  const out: Omit<StorageLimits, 'appendOnly'> = {};
  for (const [name, key] of [
    ['LIFEBOAT_LIMIT_UPLOAD', 'uploadKiBs'],
    ['LIFEBOAT_LIMIT_DOWNLOAD', 'downloadKiBs'],
  ] as const) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    if (!/^\d+$/.test(v.trim()) || Number(v) <= 0) throw new ConfigError(`${name}=${v}: expected a bandwidth in KiB/s (a positive whole number)`);
    out[key] = Number(v);
  }
  return out;
}
