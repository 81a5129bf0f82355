import { configPath } from './paths.js';
import type { LifeboatConfig } from './config.js';
import type { RepositoryConfig } from './schema.js';
import { parseSize } from './size.js';
import { resolveSecret, type SecretRef } from './password.js';
import { ConfigError, NoRepositoryError, errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import type { StorageTimeouts } from '../storage/retry.js';
import { Repository, RepositoryExistsError } from '../repo/repository.js';
import { MIN_LEASE_MS } from '../repo/lock.js';
import { openStorage } from '../storage/open.js';
import type { Storage } from '../storage/types.js';

/**
 * Opening repositories described in lifeboat.yaml: location (relative to the
 * config file), S3 options and secrets. Shared by the CLI and the daemon.
 */
export function resolveLocation(cfg: { dir: string }, loc: string): string {
  if (/^[a-z0-9]+:/i.test(loc)) return loc.startsWith('local:') ? 'local:' + configPath(cfg, loc.slice(6)) : loc;
  return configPath(cfg, loc);
}

export function secretFromConfig(cfg: { dir: string } | undefined, ref: SecretRef, what: string): string {
  return resolveSecret(ref.file && cfg ? { file: configPath(cfg, ref.file) } : ref, what);
}

/** The repository's `timeouts:` setting as storage options. */
export function timeoutsOf(conf?: RepositoryConfig): Partial<StorageTimeouts> {
  const t = conf?.timeouts;
  if (!t) return {};
  return {
    ...(t.connect ? { connectMs: parseDuration(t.connect) } : {}),
    ...(t.request ? { requestMs: parseDuration(t.request) } : {}),
    ...(t.retries !== undefined ? { retries: t.retries } : {}),
  };
}

/**
 * The storage of a repository. `signal`: aborting it ends every in-flight and
 * later request at once (a job's timeout, daemon shutdown), even a hung one.
 */
export function storageFor(location: string, conf?: RepositoryConfig, cfg?: { dir: string }, signal?: AbortSignal): Storage {
  const s3 = conf?.s3;
  return openStorage(location, {
    timeouts: timeoutsOf(conf),
    ...(signal ? { signal } : {}),
    s3: s3
      ? {
          ...(s3.region ? { region: s3.region } : {}),
          ...(s3.forcePathStyle !== undefined ? { forcePathStyle: s3.forcePathStyle } : {}),
          ...(s3.accessKeyId ? { accessKeyId: secretFromConfig(cfg, s3.accessKeyId, 's3.accessKeyId') } : {}),
          ...(s3.secretAccessKey ? { secretAccessKey: secretFromConfig(cfg, s3.secretAccessKey, 's3.secretAccessKey') } : {}),
          ...(s3.sessionToken ? { sessionToken: secretFromConfig(cfg, s3.sessionToken, 's3.sessionToken') } : {}),
          ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
          ...(s3.maxAttempts ? { maxAttempts: s3.maxAttempts } : {}),
          ...(s3.partSize !== undefined ? { partSize: parseSize(s3.partSize)! } : {}),
          ...(s3.multipartThreshold !== undefined ? { multipartThreshold: parseSize(s3.multipartThreshold)! } : {}),
          ...(s3.objectLock ? { objectLock: s3.objectLock } : {}),
          ...(s3.storageClass ? { storageClass: s3.storageClass } : {}),
          ...(s3.partConcurrency ? { partConcurrency: s3.partConcurrency } : {}),
        }
      : {},
    ...(conf?.appendOnly ? { appendOnly: true } : {}),
    ...(conf?.limits
      ? {
          limits: {
            ...(conf.limits.upload ? { uploadKiBs: conf.limits.upload } : {}),
            ...(conf.limits.download ? { downloadKiBs: conf.limits.download } : {}),
            ...(conf.limits.uploadConcurrency ? { uploadConcurrency: conf.limits.uploadConcurrency } : {}),
            ...(conf.limits.downloadConcurrency ? { downloadConcurrency: conf.limits.downloadConcurrency } : {}),
          },
        }
      : {}),
    ...(conf?.rclone ? { rclone: { ...(conf.rclone.program ? { program: conf.rclone.program } : {}), ...(conf.rclone.args ? { args: conf.rclone.args } : {}) } } : {}),
    ...(conf?.sftp
      ? {
          sftp: {
            ...(conf.sftp.keyFile ? { keyFile: cfg ? configPath(cfg, conf.sftp.keyFile) : conf.sftp.keyFile } : {}),
            ...(conf.sftp.knownHostsFile ? { knownHostsFile: cfg ? configPath(cfg, conf.sftp.knownHostsFile) : conf.sftp.knownHostsFile } : {}),
          },
        }
      : {}),
  });
}

/**
 * Which repository a job, a source or a restore uses: the one rule every entry
 * point (CLI, daemon, server, runbooks, drills, plan checks) calls.
 *   explicit name  >  the job's `repository`  >  the source's `repository`
 *   >  the repository of a job that backs up the source  >  `defaults.repository`
 *   >  the first repository defined.
 */
export function defaultRepository(cfg: Pick<LifeboatConfig, 'defaults' | 'repositories'>): string {
  const name = cfg.defaults.repository ?? Object.keys(cfg.repositories)[0];
  if (!name) throw new ConfigError('no repository configured');
  return name;
}

/** The one rule (see above). `job`: resolving for that job (its own repository first, and no other job's). */
export function repositoryFor(
  cfg: Pick<LifeboatConfig, 'defaults' | 'repositories' | 'sources' | 'jobs'>,
  ref: { source: string; job?: { repository?: string | undefined } | undefined; explicit?: string | undefined },
): string {
  if (ref.explicit) return ref.explicit;
  if (ref.job) return ref.job.repository ?? cfg.sources[ref.source]?.repository ?? defaultRepository(cfg);
  const own = cfg.sources[ref.source]?.repository;
  if (own) return own;
  const job = Object.values(cfg.jobs).find((j) => j.source === ref.source && j.repository);
  return job?.repository ?? defaultRepository(cfg);
}

export function jobRepository(cfg: LifeboatConfig, job: { source: string; repository?: string | undefined }): string {
  return repositoryFor(cfg, { source: job.source, job });
}

export function sourceRepository(cfg: LifeboatConfig, source: string, explicit?: string): string {
  return repositoryFor(cfg, { source, explicit });
}

/** Password of a configured repository: its `password` reference, else LIFEBOAT_PASSWORD. */
export function repositoryPassword(cfg: LifeboatConfig, name: string): string {
  const conf = cfg.repositories[name];
  if (!conf) throw new ConfigError(`unknown repository "${name}"`);
  if (conf.password) return secretFromConfig(cfg, conf.password, `password of repository ${name}`);
  if (process.env.LIFEBOAT_PASSWORD) return process.env.LIFEBOAT_PASSWORD;
  throw new ConfigError(`no password for repository ${name}: set its "password" in ${cfg.file} or LIFEBOAT_PASSWORD`);
}

/**
 * The lease of repository locks (src/repo/lock.ts) from LIFEBOAT_LOCK_LEASE
 * (a duration such as 5m, 30s); undefined when unset. At least 1s.
 */
export function lockLeaseFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.LIFEBOAT_LOCK_LEASE;
  if (v === undefined || v === '') return undefined;
  const ms = parseDuration(v);
  if (ms < MIN_LEASE_MS) throw new ConfigError(`LIFEBOAT_LOCK_LEASE=${v}: the lock lease must be at least 1s`);
  return ms;
}

/** A repository's configured lock lease in ms (undefined when unset); at least 1s. */
function lockLeaseOf(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms < MIN_LEASE_MS) throw new ConfigError(`${what}: ${v}: the lock lease must be at least 1s`);
  return ms;
}

/** Open (or, with autoInit, create) a repository defined in the config. */
export async function openConfiguredRepo(
  cfg: LifeboatConfig,
  name: string,
  opts: {
    password?: string;
    retryLockMs?: number;
    allowInit?: boolean;
    /** Called once this open has created the repository (autoInit); not when another process created it first. */
    onInit?: (location: string) => void;
    signal?: AbortSignal;
    /** false: the index is not read here (the caller calls ensureIndex, see Repository.open). */
    loadIndex?: boolean;
  } = {},
): Promise<Repository> {
  const conf = cfg.repositories[name];
  if (!conf) throw new ConfigError(`unknown repository "${name}" (defined: ${Object.keys(cfg.repositories).join(', ')})`);
  const storage = storageFor(resolveLocation(cfg, conf.location), conf, cfg, opts.signal);
  const pw = opts.password ?? repositoryPassword(cfg, name);
  let repo: Repository;
  try {
    repo = await Repository.open(storage, pw, { loadIndex: opts.loadIndex !== false });
  } catch (err) {
    if (!(err instanceof NoRepositoryError && conf.autoInit && opts.allowInit !== false)) throw err;
    const c = conf.chunker;
    try {
      repo = await Repository.init(storage, pw, {
        chunker: {
          ...(c?.min !== undefined ? { min: parseSize(c.min)! } : {}),
          ...(c?.avg !== undefined ? { avg: parseSize(c.avg)! } : {}),
          ...(c?.max !== undefined ? { max: parseSize(c.max)! } : {}),
        },
      });
      // (only the init that created it: one that lost the race opens the winner's below, quietly)
      opts.onInit?.(storage.location);
    } catch (e) {
      // another process created it at the same moment: use theirs
      if (!(e instanceof RepositoryExistsError)) throw e;
      repo = await Repository.open(storage, pw, { loadIndex: opts.loadIndex !== false });
    }
  }
  repo.lockRetryMs = opts.retryLockMs ?? 0;
  repo.lockLeaseMs = lockLeaseFromEnv() ?? lockLeaseOf(conf.lockLease, `repositories.${name}.lockLease`) ?? repo.lockLeaseMs;
  return repo;
}

/**
 * `plan check`: for every repository whose settings promise immutability (S3
 * objectLock), ask the storage whether it enforces it. A repository that cannot
 * be reached or does not enforce it is a failure.
 */
export async function checkImmutability(cfg: LifeboatConfig): Promise<Array<{ repository: string; ok: boolean; lines: string[] }>> {
  const out: Array<{ repository: string; ok: boolean; lines: string[] }> = [];
  for (const [name, conf] of Object.entries(cfg.repositories)) {
    if (!conf.s3?.objectLock) continue;
    let storage: Storage | undefined;
    try {
      storage = storageFor(resolveLocation(cfg, conf.location), conf, cfg);
      out.push({ repository: name, ok: true, lines: storage.checkImmutability ? await storage.checkImmutability() : [] });
    } catch (err) {
      out.push({ repository: name, ok: false, lines: [errorMessage(err)] });
    } finally {
      await storage?.close().catch(() => {});
    }
  }
  return out;
}
