import { configPath } from './paths.js';
import type { LifeboatConfig } from './config.js';
import type { SourceConfig } from './sources.js';
import type { DaemonConfig, JobConfig, RepositoryConfig } from './schema.js';
import type { DrillConfig } from './drill.js';
import { openConfiguredRepo, repositoryFor, repositoryPassword, resolveLocation, storageFor } from './repos.js';
import type { Storage } from '../storage/types.js';
import { ConfigError } from '../errors.js';
import type { Repository } from '../repo/repository.js';

/**
 * The configuration resolved once, right after loading: each source with its
 * paths made absolute (relative to the config file) and its repository; each
 * job with its source, repository, copies, retention, objectives and drill.
 * Code below the entry points takes these objects; it never looks a
 * repository up again (src/config/repos.ts `repositoryFor` is the one rule).
 */

export interface ResolvedSource {
  name: string;
  kind: SourceConfig['kind'];
  /** The source's config with every path (files paths, SQLite path, password file, command cwd) absolute. */
  config: SourceConfig;
  /** The repository its snapshots are found in (its own, else where its job writes, else the default). */
  repository: string;
  /** SQL of the `equalsBackup` drill queries of the jobs backing it up: run at backup time (sources/<kind>). */
  verifyQueries: string[];
}

export interface ResolvedJob {
  name: string;
  source: ResolvedSource;
  /** The repository this job backs up into. */
  repository: string;
  copies: string[];
  retention: unknown;
  objectives: { tier: JobConfig['tier']; rpo?: string | undefined; rto?: string | undefined };
  drill?: DrillConfig | undefined;
  tags: string[];
  job: JobConfig;
}

/** Options of opening a repository of the plan (see config/repos.ts openConfiguredRepo). */
export interface OpenRepositoryOptions {
  password?: string;
  retryLockMs?: number;
  allowInit?: boolean;
  /** Called once this open has created the repository (autoInit); not when another process created it first. */
  onInit?: (location: string) => void;
  signal?: AbortSignal;
}

export interface ResolvedPlan {
  sources: Record<string, ResolvedSource>;
  jobs: Record<string, ResolvedJob>;
  /** Every repository a job writes to (its own and its copies), in job order. */
  repositories: string[];
  /** The scheduler's settings (concurrency, maintenance, shutdown grace, catalog). */
  daemon: DaemonConfig;
  /** Open a configured repository by name (its location, storage options and password from the config). */
  openRepository(name: string, opts?: OpenRepositoryOptions): Promise<Repository>;
  /** A configured repository's settings and its location made absolute (relative to the config file). */
  repository(name: string): { name: string; location: string; config: RepositoryConfig };
  /** The storage of a configured repository (no password needed: e.g. the monitor lists WAL objects). */
  openStorage(name: string, signal?: AbortSignal): Storage;
  /** The password of a configured repository (handed to a child process's environment, never argv). */
  repositoryPassword(name: string): string;
  /** The config file and its directory (relative paths in drill/runbook settings; `--config` of child processes). */
  file: string;
  dir: string;
  /** The `notifiers:` section (parsed by config/notifiers.ts where alerts are sent). */
  notifiers: LifeboatConfig['notifiers'];
}

/** Paths in a source's config (files paths, password files, SQLite path, command cwd) are relative to the config file. */
export function resolveSourcePaths<S extends SourceConfig>(src: S, cfg: { dir: string }): S {
  const s = { ...src } as Record<string, unknown>;
  if (typeof s.passwordFile === 'string') s.passwordFile = configPath(cfg, s.passwordFile);
  if (Array.isArray(s.paths)) s.paths = (s.paths as string[]).map((p) => configPath(cfg, p));
  if (src.kind === 'sqlite') s.path = configPath(cfg, src.path);
  if (src.kind === 'command') s.cwd = configPath(cfg, src.cwd ?? '.');
  if (typeof s.dataDir === 'string') s.dataDir = configPath(cfg, s.dataDir);
  return s as S;
}

/** One configured source, resolved; `explicit` overrides its repository (a restore's --repo / step's repository). */
export function resolveSource(cfg: LifeboatConfig, name: string, explicit?: string): ResolvedSource | undefined {
  const src = cfg.sources[name];
  if (!src) return undefined;
  const verify = new Set<string>();
  for (const job of Object.values(cfg.jobs)) {
    if (job.source !== name) continue;
    for (const q of job.drill?.queries ?? []) if (q.equalsBackup && q.sql) verify.add(q.sql);
  }
  return { name, kind: src.kind, config: resolveSourcePaths(src, cfg), repository: repositoryFor(cfg, { source: name, explicit }), verifyQueries: [...verify] };
}

/** One configured job, resolved (undefined for an unknown job). */
export function resolveJob(cfg: LifeboatConfig, name: string): ResolvedJob | undefined {
  const job = cfg.jobs[name];
  if (!job) return undefined;
  const source = resolveSource(cfg, job.source)!;
  return {
    name,
    source,
    repository: repositoryFor(cfg, { source: job.source, job }),
    copies: [...job.copyTo],
    retention: job.retention ?? cfg.defaults.retention,
    objectives: { tier: job.tier, rpo: job.rpo, rto: job.rto },
    drill: job.drill,
    tags: job.tags,
    job,
  };
}

/** The whole plan, computed once at load by the entry points. */
export function resolvePlan(cfg: LifeboatConfig): ResolvedPlan {
  const sources: Record<string, ResolvedSource> = {};
  for (const name of Object.keys(cfg.sources)) sources[name] = resolveSource(cfg, name)!;
  const jobs: Record<string, ResolvedJob> = {};
  const repos = new Set<string>();
  for (const name of Object.keys(cfg.jobs)) {
    const j = resolveJob(cfg, name)!;
    jobs[name] = j;
    repos.add(j.repository);
    for (const c of j.copies) repos.add(c);
  }
  return {
    sources,
    jobs,
    repositories: [...repos],
    daemon: cfg.daemon,
    openRepository: (name, opts = {}) => openConfiguredRepo(cfg, name, opts),
    repositoryPassword: (name) => repositoryPassword(cfg, name),
    repository: (name) => {
      const conf = cfg.repositories[name];
      if (!conf) throw new ConfigError(`unknown repository "${name}" (defined: ${Object.keys(cfg.repositories).join(', ')})`);
      return { name, location: resolveLocation(cfg, conf.location), config: conf };
    },
    openStorage: (name, signal) => {
      const conf = cfg.repositories[name];
      if (!conf) throw new ConfigError(`unknown repository "${name}"`);
      return storageFor(resolveLocation(cfg, conf.location), conf, cfg, signal);
    },
    file: cfg.file,
    dir: cfg.dir,
    notifiers: cfg.notifiers,
  };
}
