import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { LifeboatConfig } from '../config/config.js';
import { resolvePlan, type ResolvedPlan, type ResolvedSource } from '../config/resolve.js';
import type { RepositoryConfig } from '../config/schema.js';
import { resolveSecret } from '../config/password.js';
import { defaultRepository, lockLeaseFromEnv, openConfiguredRepo, resolveLocation, secretFromConfig, storageFor } from '../config/repos.js';
import { ConfigError, LifeboatError } from '../errors.js';
import { Repository } from '../repo/repository.js';
import { heapNearLiveSize, withoutIncrementalMarking } from '../util/jit.js';
import { mallocSettings, releaseIdleMemory } from '../util/malloc.js';
import { secretText } from '../util/secret-text.js';
import { dropExecutableText, releaseStartupText } from '../util/startup-text.js';
import type { Storage } from '../storage/types.js';
import { makeOutput, type Output } from './output.js';
import { promptPasswordSync } from './prompt.js';

/** Global options every command accepts. */
export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  passwordCommand?: string;
  config?: string;
  json?: boolean;
  quiet?: boolean;
  retryLock?: string;
  /** false with --no-lock */
  lock?: boolean;
}

/** The config file in play: --config, LIFEBOAT_CONFIG, or ./lifeboat.yaml if it exists. */
function configFile(opts: GlobalOptions): string | undefined {
  return opts.config ?? process.env.LIFEBOAT_CONFIG ?? (existsSync('lifeboat.yaml') ? 'lifeboat.yaml' : undefined);
}

let configLoader: typeof import('../config/load.js') | undefined;

/**
 * Import the config loader (YAML parser, schemas) when a config file is in play.
 * program.ts awaits this before a command runs, so a command without a config
 * does not load it, and `config()` stays synchronous.
 */
export async function prepareConfig(opts: GlobalOptions): Promise<void> {
  if (configFile(opts) !== undefined) configLoader ??= await import('../config/load.js');
}

export class CliContext {
  readonly out: Output;
  private cfgCache: LifeboatConfig | null | undefined;
  private planCache: ResolvedPlan | undefined;

  constructor(readonly opts: GlobalOptions) {
    this.out = makeOutput(opts);
  }

  /** The config file: --config, LIFEBOAT_CONFIG, or ./lifeboat.yaml if it exists. */
  config(required = false): LifeboatConfig | undefined {
    if (this.cfgCache !== undefined) return this.cfgCache ?? undefined;
    const file = configFile(this.opts);
    if (!file) {
      if (required) throw new ConfigError('no configuration: pass --config FILE (or create ./lifeboat.yaml)');
      this.cfgCache = null;
      return undefined;
    }
    if (process.env.LIFEBOAT_DEBUG) process.stderr.write(`lifeboat: loading config ${file}\n`);
    if (!configLoader) throw new Error('internal: the config loader was not prepared (prepareConfig) before the command ran');
    this.cfgCache = configLoader.loadConfig(file);
    return this.cfgCache;
  }

  /** The config resolved once (config/resolve.ts): sources and jobs with their repositories and absolute paths. Needs a config. */
  plan(): ResolvedPlan {
    return (this.planCache ??= resolvePlan(this.config(true)!));
  }

  /** A configured source, resolved; a ConfigError naming the defined ones for an unknown name. */
  source(name: string): ResolvedSource {
    const s = this.plan().sources[name];
    if (!s) {
      const cfg = this.config(true)!;
      throw new ConfigError(`unknown source "${name}" (defined in ${cfg.file}: ${Object.keys(cfg.sources).join(', ') || 'none'})`);
    }
    return s;
  }

  /** Which repository: --repo (a location or a repository name from the config), else the config default. */
  repositoryTarget(nameHint?: string): { location: string; conf?: RepositoryConfig; name?: string } {
    const cfg = this.config();
    const wanted = this.opts.repo ?? process.env.LIFEBOAT_REPOSITORY;
    if (wanted) {
      const conf = cfg?.repositories[wanted];
      if (conf && cfg) return { location: resolveLocation(cfg, conf.location), conf, name: wanted };
      return { location: wanted };
    }
    if (!cfg) throw new ConfigError('no repository given: use --repo PATH|URL, LIFEBOAT_REPOSITORY, or --config FILE');
    const name = nameHint ?? defaultRepository(cfg);
    const conf = cfg.repositories[name];
    if (!conf) throw new ConfigError(`unknown repository "${name}" (defined: ${Object.keys(cfg.repositories).join(', ')})`);
    return { location: resolveLocation(cfg, conf.location), conf, name };
  }

  /**
   * The repository password: --password-file, --password-command,
   * LIFEBOAT_PASSWORD, the config's repository password, LIFEBOAT_PASSWORD_FILE,
   * else a prompt on the terminal (twice for `init`). Never from argv.
   */
  password(conf?: RepositoryConfig, opts: { confirm?: boolean } = {}): string {
    if (this.opts.passwordFile) return resolveSecret({ file: this.opts.passwordFile }, 'repository password (--password-file)');
    if (this.opts.passwordCommand) return resolveSecret({ command: this.opts.passwordCommand }, 'repository password (--password-command)');
    if (process.env.LIFEBOAT_PASSWORD) return process.env.LIFEBOAT_PASSWORD;
    if (conf?.password) return secretFromConfig(this.config(), conf.password, 'repository password');
    if (process.env.LIFEBOAT_PASSWORD_FILE) return resolveSecret({ file: process.env.LIFEBOAT_PASSWORD_FILE }, 'repository password (LIFEBOAT_PASSWORD_FILE)');
    const typed = promptPasswordSync(opts.confirm ? 'enter password for new repository: ' : 'enter password for repository: ');
    if (typed !== undefined) {
      if (!typed) throw new ConfigError('empty password');
      if (opts.confirm && promptPasswordSync('enter password again: ') !== typed) throw new ConfigError('passwords do not match');
      return typed;
    }
    throw new ConfigError('no repository password: set LIFEBOAT_PASSWORD, or pass --password-file FILE / --password-command CMD');
  }

  storageFor(location: string, conf?: RepositoryConfig): Storage {
    return storageFor(location, conf, this.config());
  }

  /**
   * Open the repository (auto-initializing it when the config says so). `bulk`: the command moves one stream of
   * data through Buffers (a stream backup or a source's dump, a PostgreSQL base backup or its
   * restore; a stream snapshot's restore calls withoutIncrementalMarking itself once it knows):
   * V8's incremental marking is turned off once the index is loaded (util/jit.ts). Commands
   * that walk metadata (check, prune, ls, files backups and restores) keep it: without it their
   * garbage waits for the limit (1M-blob check 213 -> 305 MB, 100k-file unchanged re-backup +38 MB).
   * `index: false` (WITHOUT_INDEX): the index is not read here, because the command reads no blob
   * (snapshots, key, locks; as restic's `snapshots`) or reads the index itself later (prune, forget
   * --prune: after taking their lock). Reading it costs time and ~80 B of memory per blob.
   */
  async openRepo(opts: RepoOpenOptions = {}): Promise<Repository> {
    const t = this.repositoryTarget(opts.nameHint);
    const cfg = this.config();
    const pw = this.password(t.conf);
    const repo =
      t.name && cfg
        ? await openConfiguredRepo(cfg, t.name, {
            password: pw,
            retryLockMs: this.retryLockMs(),
            ...(opts.allowInit !== undefined ? { allowInit: opts.allowInit } : {}),
            onInit: (loc) => this.out.info(`created repository at ${loc}`),
            loadIndex: false,
          })
        : await Repository.open(this.storageFor(t.location, t.conf), pw, { loadIndex: false });
    if (opts.index !== false) {
      // The start-up's pages (module loading, the key's derivation) are given back before the index
      // is read, and again once it is (below): with a large index, reading it on top of them was the
      // command's peak (100,000 files' unchanged re-backup: 97-98 MB, 79-82 with this drop; util/startup-text.ts).
      dropExecutableText();
      await repo.ensureIndex();
    }
    this.lockSettings(repo);
    repo.onWarning = (m) => this.out.warn(m);
    for (const [name, err] of repo.indexErrors) {
      this.out.warn(`index file ${name.slice(0, 12)} is damaged and was skipped (${(err as Error).message}); run "lifeboat check" / "lifeboat repair index"`);
    }
    // bulk: the index is loaded (its parse garbage is what incremental marking keeps small: 1M
    // blobs opened at 194 MB with it, 261 MB without) and what follows moves data through Buffers
    if (opts.bulk) streamCommandSettings();
    // the command's start-up is over: the executable's pages only it used are given back (util/startup-text.ts)
    releaseStartupText();
    return repo;
  }

  /** Run fn with the opened repository and always close it. */
  async withRepo<T>(fn: (repo: Repository) => Promise<T>, opts: RepoOpenOptions = { allowInit: false }): Promise<T> {
    const repo = await this.openRepo(opts);
    try {
      return await fn(repo);
    } finally {
      await repo.close();
    }
  }

  /** Open a second repository (e.g. the source of `copy`): a location or config name, with its own password. */
  async openOtherRepo(wanted: string, passwordFile?: string): Promise<Repository> {
    const cfg = this.config();
    const conf = cfg?.repositories[wanted];
    const location = conf && cfg ? resolveLocation(cfg, conf.location) : wanted;
    let pw: string;
    if (passwordFile) pw = resolveSecret({ file: passwordFile }, `password for ${wanted}`);
    else if (process.env.LIFEBOAT_FROM_PASSWORD) pw = process.env.LIFEBOAT_FROM_PASSWORD;
    else if (conf?.password) pw = secretFromConfig(cfg, conf.password, `password for ${wanted}`);
    else throw new ConfigError(`no password for ${wanted}: pass --from-password-file FILE or set LIFEBOAT_FROM_PASSWORD`);
    const repo = await Repository.open(this.storageFor(location, conf), pw);
    this.lockSettings(repo);
    return repo;
  }

  /**
   * --retry-lock, --no-lock, LIFEBOAT_LOCK_LEASE, and what happens when a lock
   * is lost: an exclusive operation (prune, repair, log pruning) that has not
   * stopped by itself at its next step within lease/12 (a storage call hanging
   * on a dead network) is ended here, loudly; it is crash-safe at every
   * instant. A shared holder stops at its next check (before it commits).
   */
  private lockSettings(repo: Repository): void {
    repo.lockRetryMs = this.retryLockMs();
    repo.noLock = this.opts.lock === false;
    repo.lockLeaseMs = lockLeaseFromEnv() ?? repo.lockLeaseMs;
    repo.onLockLost = (err, lock) => {
      if (!lock.exclusive) return this.out.warn(err.message);
      setTimeout(() => {
        process.stderr.write(`lifeboat: ${err.message}\n`);
        process.exit(err.exitCode);
      }, Math.max(100, Math.floor(lock.leaseMs / 12))).unref();
    };
  }

  retryLockMs(): number {
    const v = this.opts.retryLock;
    if (!v) return 0;
    const m = /^(\d+)(ms|s|m|h)?$/.exec(v);
    if (!m) throw new ConfigError(`--retry-lock ${v}: expected a duration like 30s, 5m`);
    return Number(m[1]) * ({ ms: 1, s: 1000, m: 60000, h: 3600000 }[(m[2] ?? 's') as 'ms'] ?? 1000);
  }
}


/** How CliContext.openRepo / withRepo open the repository (see openRepo). */
export interface RepoOpenOptions {
  nameHint?: string;
  allowInit?: boolean;
  bulk?: boolean;
  index?: boolean;
}

/** An existing repository, its index not read (see CliContext.openRepo): snapshots, key, locks, prune, forget. */
export const WITHOUT_INDEX: RepoOpenOptions = { allowInit: false, index: false };

/**
 * The process moves one stream of data through Buffers from now on (a stream or dump backup, a
 * base backup, a stream snapshot's restore): V8's incremental marking off and its old generation
 * kept near its live size (util/jit.ts), glibc's mmap threshold set (util/malloc.ts).
 */
export function streamCommandSettings(): void {
  withoutIncrementalMarking();
  heapNearLiveSize();
  mallocSettings('stream');
}

/**
 * What a backup of a source sets in this process once its repository is open (`backup --source`,
 * `lifeboat run`): a stream source's the stream commands' (streamCommandSettings), a files source
 * (layout 'tree') only its large buffers' own mappings (util/malloc.ts 'filesBackup'): a files
 * backup walks metadata and keeps V8's incremental marking. Both give the executable's start-up
 * pages back (util/startup-text.ts).
 */
export function sourceBackupSettings(layout: 'tree' | 'stream'): void {
  if (layout === 'tree') mallocSettings('filesBackup');
  else streamCommandSettings();
  releaseStartupText();
}

/**
 * The long-lived processes, `lifeboat daemon` and `lifeboat serve`, one of which runs every job, drill
 * and restore it starts: their jobs' large buffers get mappings of their own from the start (util/malloc.ts
 * 'service'; V8's incremental marking stays on: files jobs, check, prune and the HTTP server walk metadata
 * in the same process). Returns their idle hook (Daemon / TaskRegistry `idle`): what a job left is given
 * back once none runs (releaseIdleMemory), and so are the executable's pages the job alone used (util/startup-text.ts).
 */
export function serviceSettings(): () => void {
  mallocSettings('service');
  return () => {
    releaseIdleMemory();
    releaseStartupText();
  };
}

export function readPasswordFileArg(file: string, what: string): string {
  try {
    const v = secretText(readFileSync(path.resolve(file), 'utf8'));
    if (!v) throw new LifeboatError(`${what}: file ${file} is empty`, 2);
    return v;
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
    throw new LifeboatError(`${what}: cannot read ${file}`, 2);
  }
}
