import { LocalStorage } from './local.js';
import { S3Storage, type S3Options } from './s3.js';
import type { Storage } from './types.js';
import type { StorageTimeouts } from './retry.js';
import { ConfigError, errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';

/**
 * Repository locations:
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
 *
 * Credentials never go in the location (it is printed and stored in snapshot
 * metadata): use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the config file.
 */
export type ParsedLocation =
  | { kind: 'local'; path: string }
  | {
      kind: 's3';
      bucket: string;
      /** '' or 'a/b/' */
      prefix: string;
      /** Custom endpoint, or undefined for AWS. */
      endpoint?: string;
      region: string;
      forcePathStyle: boolean;
    };

/** Schemes of other backup tools / protocols we do not support, so "sftp:host:/x" is not silently a local directory. */
const FOREIGN_SCHEMES = new Set([
  'sftp', 'ssh', 'rest', 'rclone', 'b2', 'azure', 'gs', 'gcs', 'swift', 'http', 'https', 'ftp', 'ftps', 'smb', 'file', 'webdav', 'minio',
]);

const AWS_HOST_RE = /(^|\.)amazonaws\.com(\.cn)?$/i;

export function parseLocation(location: string, env: NodeJS.ProcessEnv = process.env): ParsedLocation {
  if (typeof location !== 'string' || location.trim() === '') {
    throw new ConfigError('empty repository location: give a directory path or an s3: URL');
  }
  if (location.includes('\0')) throw new ConfigError('invalid repository location: contains a NUL byte');

  if (location.startsWith('local:')) {
    const p = location.slice('local:'.length);
    if (p.trim() === '') throw new ConfigError(`invalid repository location "${location}": no directory after "local:"`);
    return { kind: 'local', path: p };
  }

  if (location.startsWith('s3:')) return parseS3(location, env);

  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(location)?.[1];
  if (scheme && scheme.length > 1 && (FOREIGN_SCHEMES.has(scheme.toLowerCase()) || location.startsWith(`${scheme}://`))) {
    const hint =
      scheme.toLowerCase() === 'http' || scheme.toLowerCase() === 'https'
        ? ` (for an S3-compatible server write "s3:${describeLocation(location)}")`
        : ` (supported: a directory path, local:/path, s3://bucket/prefix, s3:https://host/bucket/prefix; for a directory whose name contains ":" write "./${describeLocation(location)}")`;
    throw new ConfigError(`unsupported repository location "${describeLocation(location)}": unknown scheme "${scheme}:"${hint}`);
  }
  return { kind: 'local', path: location };
}

function regionFromEnv(env: NodeJS.ProcessEnv): string {
  return env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
}

function parseS3(location: string, env: NodeJS.ProcessEnv): ParsedLocation {
  const shown = describeLocation(location);
  const rest = location.slice('s3:'.length);
  const bad = (why: string) => new ConfigError(`invalid S3 location "${shown}": ${why}`);

  // s3://bucket/prefix: AWS (or the endpoint from the standard AWS env variables)
  if (rest.startsWith('//')) {
    const body = rest.slice(2);
    if (/^[^/]*@/.test(body)) throw bad('credentials are not allowed in the location; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY');
    if (/[?#]/.test(body)) throw bad('query strings and fragments are not supported');
    const [bucket = '', ...segs] = body.split('/');
    if (!bucket) throw bad('no bucket name (expected s3://bucket[/prefix])');
    validateBucket(bucket, true, bad);
    const prefix = parsePrefix(segs, bad, false);
    const envVar = env.AWS_ENDPOINT_URL_S3 ? 'AWS_ENDPOINT_URL_S3' : env.AWS_ENDPOINT_URL ? 'AWS_ENDPOINT_URL' : undefined;
    if (envVar) {
      const endpoint = env[envVar]!;
      let u: URL;
      try {
        u = new URL(endpoint);
      } catch {
        throw new ConfigError(`invalid ${envVar}: not a URL`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`invalid ${envVar}: must start with http:// or https://`);
      if (u.username || u.password) throw new ConfigError(`invalid ${envVar}: credentials are not allowed in the endpoint URL`);
      return {
        kind: 's3',
        bucket,
        prefix,
        endpoint: u.origin + u.pathname.replace(/\/+$/, ''),
        region: regionFromEnv(env),
        forcePathStyle: !AWS_HOST_RE.test(u.hostname),
      };
    }
    return { kind: 's3', bucket, prefix, region: regionFromEnv(env), forcePathStyle: false };
  }

  // s3:https://host/bucket/prefix, s3:http://..., or restic-style s3:host/bucket/prefix
  let urlText = rest;
  if (!/^https?:\/\//i.test(rest)) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) throw bad('the endpoint must be an http:// or https:// URL');
    const host = rest.split('/')[0] ?? '';
    if (!host || !(host.includes('.') || host.includes(':') || host === 'localhost')) {
      throw bad('expected s3://bucket[/prefix] (AWS) or s3:https://host[:port]/bucket[/prefix] (S3-compatible server)');
    }
    urlText = `https://${rest}`;
  }
  let u: URL;
  try {
    u = new URL(urlText);
  } catch {
    throw bad('the endpoint is not a valid URL');
  }
  if (u.username || u.password) {
    throw bad('credentials are not allowed in the location; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY');
  }
  if (u.search || u.hash || /[?#]/.test(urlText)) throw bad('query strings and fragments are not supported');
  // Check the raw path: URL parsing would silently resolve "a/../b" and "%2e%2e".
  const rawSegs = urlText.replace(/^https?:\/\/[^/]*/i, '').split('/').slice(1);
  for (const seg of rawSegs) {
    const d = decodeSegment(seg, bad);
    if (d === '.' || d === '..') throw bad(`"${d}" is not allowed in the bucket or prefix`);
  }
  if (!u.hostname) throw bad('no host in the endpoint URL');
  const segs = u.pathname.split('/').slice(1);
  if (segs[segs.length - 1] === '') segs.pop();
  const rawBucket = segs.shift() ?? '';
  if (!rawBucket) throw bad('no bucket name after the endpoint (expected s3:https://host[:port]/bucket[/prefix])');
  const bucket = decodeSegment(rawBucket, bad);
  const aws = AWS_HOST_RE.test(u.hostname);
  validateBucket(bucket, aws, bad);
  const prefix = parsePrefix(segs, bad, true);
  let region = regionFromEnv(env);
  if (aws) {
    // s3.eu-west-1.amazonaws.com, s3-eu-west-1.amazonaws.com, s3.dualstack.eu-west-1.amazonaws.com
    const m = /^s3[.-](?:dualstack\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com/i.exec(u.hostname);
    if (m) region = m[1]!.toLowerCase();
  }
  return { kind: 's3', bucket, prefix, endpoint: u.origin, region, forcePathStyle: !aws };
}

function decodeSegment(seg: string, bad: (why: string) => ConfigError): string {
  try {
    return decodeURIComponent(seg);
  } catch {
    throw bad(`malformed percent-encoding in "${seg}"`);
  }
}

function parsePrefix(segs: string[], bad: (why: string) => ConfigError, encoded: boolean): string {
  const parts = [...segs];
  if (parts.length && parts[parts.length - 1] === '') parts.pop(); // one trailing slash is fine
  const out: string[] = [];
  for (const raw of parts) {
    const s = encoded ? decodeSegment(raw, bad) : raw;
    if (s === '') throw bad('empty path segment ("//") in the prefix');
    if (s === '.' || s === '..') throw bad(`"${s}" is not allowed in the prefix`);
    out.push(s);
  }
  return out.length ? `${out.join('/')}/` : '';
}

function validateBucket(bucket: string, strict: boolean, bad: (why: string) => ConfigError): void {
  if (strict) {
    if (bucket.length < 3 || bucket.length > 63) throw bad(`bucket name "${bucket}" must be 3 to 63 characters long`);
    if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(bucket)) {
      throw bad(`bucket name "${bucket}" may only contain lowercase letters, digits, "." and "-", and must start and end with a letter or digit`);
    }
    if (bucket.includes('..')) throw bad(`bucket name "${bucket}" must not contain ".."`);
    if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) throw bad(`bucket name "${bucket}" must not look like an IP address`);
  } else if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/.test(bucket)) {
    throw bad(`bucket name "${bucket}" contains characters that are not allowed`);
  }
}

/** A location safe to print: any user:password@ part of a URL is removed. Never throws. */
export function describeLocation(location: string): string {
  if (typeof location !== 'string') return String(location);
  // s3://user:secret@bucket/...  and  s3:https://user:secret@host/...  and  https://user:secret@host
  return location.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?\/\/)[^/?#]*@/, (_m, head: string) => head);
}

export interface OpenStorageOptions {
  s3?: Partial<S3Options>;
  /** Connect/request timeouts and retries (repository config `timeouts`); the environment overrides them. */
  timeouts?: Partial<StorageTimeouts>;
  /** Aborting it ends every in-flight and later request of the storage (job timeout, shutdown). */
  signal?: AbortSignal;
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
  const parsed = parseLocation(location);
  const timeouts = { ...opts.timeouts, ...timeoutsFromEnv() };
  const signal = opts.signal ? { signal: opts.signal } : {};
  if (parsed.kind === 'local') return new LocalStorage(parsed.path, { timeouts, ...signal });
  const o = opts.s3 ?? {};
  const endpoint = o.endpoint ?? parsed.endpoint;
  // s3.maxAttempts is the older spelling of the retry count: the environment's LIFEBOAT_RETRIES still wins
  const envRetries = timeouts.retries !== undefined && process.env.LIFEBOAT_RETRIES ? { maxAttempts: timeouts.retries + 1 } : {};
  return new S3Storage({
    ...o,
    ...envRetries,
    timeouts: { ...o.timeouts, ...timeouts },
    ...signal,
    bucket: parsed.bucket,
    prefix: parsed.prefix,
    region: o.region ?? parsed.region,
    forcePathStyle: o.forcePathStyle ?? (o.endpoint ? true : parsed.forcePathStyle),
    ...(endpoint ? { endpoint } : {}),
  });
}
