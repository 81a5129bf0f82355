import { ConfigError } from '../errors.js';
import { LocalStorage } from './local.js';
import { RcloneStorage } from './rclone.js';
import { S3Storage, type S3Options } from './s3.js';
import { parseS3Location, type S3Location } from './s3-location.js';
import { openSftp, parseSftpLocation, type SftpLocation, type SftpOptions } from './sftp.js';
import type { StorageTimeouts } from './retry.js';
import type { Storage } from './types.js';

/**
 * The storage backend registry: URL scheme → backend. Adding a backend is one
 * provider file (a class implementing storage/types.ts `Storage`, its location
 * parser) and one entry here; storage/open.ts dispatches through this table and
 * wraps whatever it returns in the shared layers (storage/limits.ts: append-only
 * guard, bandwidth and concurrency limits, byte counters). Every backend runs its
 * requests through storage/retry.ts storageCall (deadline per attempt, retries).
 */
export interface RcloneSettings {
  /** rclone program (default env LIFEBOAT_RCLONE or "rclone"). */
  program?: string;
  /** Extra rclone flags, e.g. ["--config", "/etc/lifeboat/rclone.conf"]. */
  args?: string[];
}

/** Everything a backend factory may use to open a location. */
export interface OpenContext {
  env: NodeJS.ProcessEnv;
  timeouts: Partial<StorageTimeouts>;
  signal?: AbortSignal;
  s3?: Partial<S3Options>;
  rclone?: RcloneSettings;
  sftp?: SftpOptions;
  /** Ask the backend for server-side append-only enforcement where it has it (rclone, SFTP). */
  appendOnly?: boolean;
}

export type LocalLocation = { kind: 'local'; path: string };
export type RcloneLocation = { kind: 'rclone'; remote: string };
export type ParsedLocation = LocalLocation | S3Location | RcloneLocation | SftpLocation;

export interface Backend<L extends ParsedLocation = ParsedLocation> {
  /** Location prefix without the colon: "s3" matches "s3:..." and "s3://...". */
  scheme: string;
  /** One line for error messages: the accepted forms. */
  forms: string;
  parse(location: string, env: NodeJS.ProcessEnv): L;
  open(parsed: L, ctx: OpenContext): Storage;
}

const local: Backend<LocalLocation> = {
  scheme: 'local',
  forms: 'local:/path (or a plain directory path)',
  parse(location) {
    const p = location.slice('local:'.length);
    if (p.trim() === '') throw new ConfigError(`invalid repository location "${location}": no directory after "local:"`);
    return { kind: 'local', path: p };
  },
  open(parsed, ctx) {
    return new LocalStorage(parsed.path, { timeouts: ctx.timeouts, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  },
};

const s3: Backend<S3Location> = {
  scheme: 's3',
  forms: 's3://bucket[/prefix], s3:https://host[:port]/bucket[/prefix]',
  parse: (location, env) => parseS3Location(location, env),
  open(parsed, ctx) {
    const o = ctx.s3 ?? {};
    const endpoint = o.endpoint ?? parsed.endpoint;
    // s3.maxAttempts is the older spelling of the retry count: the environment's LIFEBOAT_RETRIES still wins
    const envRetries = ctx.timeouts.retries !== undefined && ctx.env.LIFEBOAT_RETRIES ? { maxAttempts: ctx.timeouts.retries + 1 } : {};
    return new S3Storage({
      ...o,
      ...envRetries,
      timeouts: { ...o.timeouts, ...ctx.timeouts },
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      bucket: parsed.bucket,
      prefix: parsed.prefix,
      region: o.region ?? parsed.region,
      forcePathStyle: o.forcePathStyle ?? (o.endpoint ? true : parsed.forcePathStyle),
      ...(endpoint ? { endpoint } : {}),
      ...(ctx.appendOnly ? { appendOnly: true } : {}),
    });
  },
};

const rclone: Backend<RcloneLocation> = {
  scheme: 'rclone',
  forms: 'rclone:REMOTE:PATH (any rclone remote, e.g. rclone:gdrive:backups)',
  parse(location) {
    const remote = location.slice('rclone:'.length);
    if (!remote.includes(':') || remote.startsWith('-') || remote.startsWith(':')  && remote.indexOf(':', 1) < 0) {
      throw new ConfigError(`invalid rclone location "${location}": expected rclone:REMOTE:PATH (REMOTE as in rclone's config, or :backend: for an on-the-fly remote)`);
    }
    if (/[\0\n\r]/.test(remote)) throw new ConfigError(`invalid rclone location: control characters`);
    return { kind: 'rclone', remote };
  },
  open(parsed, ctx) {
    return new RcloneStorage({
      remote: parsed.remote,
      timeouts: ctx.timeouts,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(ctx.rclone?.program ? { program: ctx.rclone.program } : {}),
      ...(ctx.rclone?.args ? { args: ctx.rclone.args } : {}),
      ...(ctx.appendOnly ? { appendOnly: true } : {}),
    });
  },
};

const sftp: Backend<SftpLocation> = {
  scheme: 'sftp',
  forms: 'sftp:user@host:/path, sftp://user@host[:port]/path (through rclone)',
  parse: (location) => parseSftpLocation(location),
  open(parsed, ctx) {
    return openSftp(
      parsed,
      {
        ...ctx.sftp,
        timeouts: ctx.timeouts,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(ctx.rclone?.program ? { program: ctx.rclone.program } : {}),
        ...(ctx.rclone?.args ? { args: ctx.rclone.args } : {}),
        ...(ctx.appendOnly ? { appendOnly: true } : {}),
      },
      ctx.env,
    );
  },
};

const backends = new Map<string, Backend>();

/** Add (or replace) the backend of a scheme. */
export function registerBackend<L extends ParsedLocation>(b: Backend<L>): void {
  backends.set(b.scheme.toLowerCase(), b as unknown as Backend);
}

for (const b of [local, s3, rclone, sftp] as Backend[]) registerBackend(b);

export function backendFor(scheme: string): Backend | undefined {
  return backends.get(scheme.toLowerCase());
}

export function backendKind(kind: ParsedLocation['kind']): Backend {
  const b = backends.get(kind);
  if (!b) throw new ConfigError(`no storage backend for "${kind}"`);
  return b;
}

/** "local:/path (...); s3://...; ...": for messages. */
export function supportedForms(): string {
  return ['a directory path', ...[...backends.values()].map((b) => b.forms)].join('; ');
}
