import { ConfigError } from '../errors.js';
import { describeLocation } from './describe.js';

/** A parsed S3 location (see storage/open.ts for the accepted forms). */
export interface S3Location {
  kind: 's3';
  bucket: string;
  /** '' or 'a/b/' */
  prefix: string;
  /** Custom endpoint, or undefined for AWS. */
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
}

const AWS_HOST_RE = /(^|\.)amazonaws\.com(\.cn)?$/i;

function regionFromEnv(env: NodeJS.ProcessEnv): string {
  return env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
}

export function parseS3Location(location: string, env: NodeJS.ProcessEnv): S3Location {
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

