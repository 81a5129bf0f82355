import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { SnapshotWithId } from '../../repo/snapshot.js';
import { baseBackups, parseLsn, segmentRange, walObjectId } from '../../repo/wal.js';
import { DEFAULT_ARCHIVE, validateArchiveName } from '../../repo/wal-names.js';
import { pgEnv } from '../postgres/dump.js';
import {
  TailBuffer,
  parseOptions,
  probeTcp,
  requireTool,
  resolvePassword,
  runCapture,
  spawnTool,
  toolVersion,
  type SourceContext,
} from '../proc.js';
import { restoreStream } from '../stream.js';
import { baseBackupFacts, baseBackupMeta, TarPeek } from './backup-facts.js';
import { directBaseBackup } from './direct.js';
import type { DumpHandle, RestoreResult } from '../types.js';
import { pgPhysicalSourceSchema } from '../../config/sources.js';

/**
 * PostgreSQL physical backups for point-in-time recovery (docs/pitr.md).
 *
 * Base backup: `pg_basebackup -Ft -X none -D - --checkpoint=fast` streams one
 * tar of the data directory straight into the repository (no temp file); with
 * `dataDir` set, Lifeboat reads the data directory itself and streams the same
 * tar (direct.ts). WAL is not in the tar (-X none): the server archives it
 * continuously with `archive_command = 'lifeboat wal-push %p'`
 * (src/repo/wal.ts). While the tar streams through, a passive tar reader
 * (backup-facts.ts) picks up `backup_label` (start LSN, start segment, timeline),
 * `global/pg_control` (system identifier) and `PG_VERSION`; the end LSN comes
 * from the backup_manifest pg_basebackup adds (or its -v report on stderr). All
 * of it is recorded in the snapshot's `source` (kind `pg-basebackup`).
 *
 * Restore: pick the newest base backup that finished before the target,
 * extract it into an empty directory (mode 0700), write recovery.signal and the
 * recovery settings (restore_command = `lifeboat wal-fetch %f %p …` with a
 * password FILE, recovery_target_*) into postgresql.auto.conf.
 */

export type PgPhysicalOptions = z.output<typeof pgPhysicalSourceSchema>;
export type PgPhysicalInput = z.input<typeof pgPhysicalSourceSchema>;

const HINT = 'install the PostgreSQL client tools (e.g. "apt install postgresql-client") or set binDir';

// ---------------------------------------------------------------- base backup

interface ServerFacts {
  serverVersion?: string;
  serverVersionNum?: number;
  walSegmentSize?: number;
  archiveMode?: string;
  systemIdentifier?: string;
  timeline?: number;
}

async function serverFacts(psql: string, env: NodeJS.ProcessEnv): Promise<ServerFacts> {
  const q = async (sql: string) => (await runCapture(psql, ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { env, timeoutMs: 30_000 })).stdout.toString().trim();
  const out: ServerFacts = {};
  const basic = (await q(
    "SELECT current_setting('server_version') || '|' || current_setting('server_version_num') || '|' || " +
      "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') || '|' || current_setting('archive_mode')",
  )).split('|');
  out.serverVersion = basic[0];
  out.serverVersionNum = Number(basic[1]);
  out.walSegmentSize = Number(basic[2]);
  out.archiveMode = basic[3];
  try {
    const [sid, tli] = (await q("SELECT (SELECT system_identifier FROM pg_control_system()) || '|' || (SELECT timeline_id FROM pg_control_checkpoint())")).split('|');
    out.systemIdentifier = sid;
    out.timeline = Number(tli);
  } catch {
    /* not allowed for this role: pg_control and backup_label give the same facts */
  }
  return out;
}

/**
 * Start a base backup (a DumpHandle like every stream source): the tar streams
 * from pg_basebackup's stdout; `done` resolves with the backup's facts once the
 * tool exited successfully.
 */
export async function dumpPgPhysical(input: PgPhysicalInput | PgPhysicalOptions, ctx: SourceContext = {}): Promise<DumpHandle> {
  const o = parseOptions(pgPhysicalSourceSchema, input, `postgres-physical source${ctx.name ? ` ${ctx.name}` : ''}`);
  const password = resolvePassword(o, `postgres-physical source${ctx.name ? ` ${ctx.name}` : ''}`);
  if (o.dataDir) return directBaseBackup(o, password, ctx);
  const env = pgEnv({ host: o.host, port: o.port, user: o.user, database: 'postgres', connectTimeout: o.connectTimeout, ...(password !== undefined ? { password } : {}), ...(o.sslmode ? { sslmode: o.sslmode } : {}) });
  const tool = requireTool('pg_basebackup', HINT, o.binDir);
  const psql = requireTool('psql', HINT, o.binDir);
  if (!o.host.startsWith('/')) await probeTcp(o.host, o.port, 'PostgreSQL', o.connectTimeout * 1000);
  let facts: ServerFacts = {};
  try {
    facts = await serverFacts(psql, env);
  } catch (err) {
    // A replication-only role may not connect to a database: the tar has what we need.
    void err;
  }
  if (facts.archiveMode === 'off') {
    throw new LifeboatError(
      `archive_mode is off on ${o.host}:${o.port}: a base backup without archived WAL cannot be restored (-X none). ` +
        "Set archive_mode = on and archive_command = 'lifeboat wal-push %p …' first (docs/pitr.md)",
    );
  }
  const tv = await toolVersion(tool);
  const peek = new TarPeek();
  const label = `lifeboat ${new Date().toISOString()}`;
  const args = ['-h', o.host, '-p', String(o.port), '-U', o.user, '-w', '-D', '-', '-F', 't', '-X', 'none', '--checkpoint=fast', '-v', '-l', label];
  if (o.maxRate) args.push('--max-rate', o.maxRate);
  const started = Date.now();
  const run = spawnTool(tool, args, {
    tool: 'pg_basebackup',
    env,
    observe: (chunk) => peek.observe(chunk),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    onSuccess: (stderr) => {
      if (!peek.facts.backupLabel) throw new LifeboatError('pg_basebackup succeeded but its tar has no backup_label; refusing to record an unrestorable backup');
      // End LSN: the manifest's last WAL range (pg_basebackup injects backup_manifest into a tar on stdout).
      const ranges = [...(peek.facts.manifestTail ?? '').matchAll(/"End-LSN"\s*:\s*"([0-9A-F]+\/[0-9A-F]+)"/g)];
      const end = ranges.length ? ranges[ranges.length - 1]![1]! : /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/.exec(stderr)?.[1];
      if (!end) throw new LifeboatError(`cannot tell where the base backup ends (no backup_manifest WAL range); stderr: ${stderr.slice(-500)}`);
      return baseBackupFacts({
        archive: o.archive,
        systemIdentifier: peek.facts.systemIdentifier ?? facts.systemIdentifier,
        backupLabel: peek.facts.backupLabel,
        endLsn: end,
        walSegmentSize: facts.walSegmentSize || 16 * 1024 * 1024,
        started,
        pgVersion: peek.facts.pgVersion,
        tablespaceMap: peek.facts.tablespaceMap,
      });
    },
  });
  return {
    stream: run.stream,
    done: run.done,
    meta: {
      ...baseBackupMeta(o, ctx.name),
      ...(facts.serverVersion ? { serverVersion: facts.serverVersion } : {}),
      tool: 'pg_basebackup',
      toolVersion: tv,
      format: 'tar',
    },
    filename: o.filename ?? 'base.tar',
    abort: run.abort,
  };
}

// ---------------------------------------------------------------- restore

export interface PitrTarget {
  /** Recover up to this time (recovery_target_time). */
  time?: Date;
  /** Recover up to this LSN (recovery_target_lsn). */
  lsn?: string;
  /** recovery_target_action (default promote). */
  action?: 'promote' | 'pause' | 'shutdown';
  /** recovery_target_timeline (default: PostgreSQL's default, 'latest'). */
  timeline?: string;
}

export interface PgRestoreOptions {
  /** Snapshot id/prefix; default: the newest base backup that finished before the target. */
  snapshot?: string;
  /** Only base backups of this source name. */
  source?: string;
  to: string;
  target: PitrTarget;
  /** Full shell command PostgreSQL runs to fetch WAL (with %f and %p). */
  restoreCommand: string;
  /**
   * WAL archiving of the restored server; required, there is no default:
   * - 'off': write archive_mode = off, so a copy made to test, inspect or drill
   *   never archives its new timeline into the production archive;
   * - 'preserve': keep the backed-up archive_mode / archive_command, for a real
   *   promotion of the restored cluster into the new primary (docs/pitr.md).
   */
  archiveMode: PgArchiveMode;
  log?: (m: string) => void;
}

export const PG_ARCHIVE_MODES = ['off', 'preserve'] as const;
export type PgArchiveMode = (typeof PG_ARCHIVE_MODES)[number];

export interface PgRestoreResult {
  snapshot: SnapshotWithId;
  to: string;
  bytes: number;
  durationMs: number;
  settings: Record<string, string>;
  walChecked: number;
}

function stopTimeOf(s: SnapshotWithId): number {
  return Date.parse(String(s.source?.stopTime ?? s.time));
}

/** The base backup to restore from: the given one, or the newest that finished before the target. */
export async function chooseBaseBackup(repo: Repository, opts: { snapshot?: string; source?: string; target: PitrTarget }): Promise<SnapshotWithId> {
  const { target } = opts;
  if (opts.snapshot && opts.snapshot !== 'latest') {
    const s = await repo.findSnapshot(opts.snapshot);
    if (s.source?.kind !== 'pg-basebackup') throw new LifeboatError(`snapshot ${s.id.slice(0, 8)} is not a PostgreSQL base backup (kind ${String(s.source?.kind ?? 'files')})`, 2);
    if (target.time && stopTimeOf(s) > target.time.getTime()) {
      throw new LifeboatError(`base backup ${s.id.slice(0, 8)} finished at ${new Date(stopTimeOf(s)).toISOString()}, after the target time ${target.time.toISOString()}: choose an older base backup`, 2);
    }
    return s;
  }
  let all = baseBackups(await repo.listSnapshots());
  if (opts.source) all = all.filter((s) => s.source?.name === opts.source);
  if (all.length === 0) throw new LifeboatError(`no PostgreSQL base backup in the repository${opts.source ? ` for source ${opts.source}` : ''}`);
  let ok = all;
  if (target.time) ok = all.filter((s) => stopTimeOf(s) <= target.time!.getTime());
  else if (target.lsn) {
    const t = parseLsn(target.lsn);
    ok = all.filter((s) => parseLsn(String(s.source!.endLsn)) <= t);
  }
  ok.sort((a, b) => stopTimeOf(a) - stopTimeOf(b));
  const pick = ok[ok.length - 1];
  if (!pick) {
    const first = all.map(stopTimeOf).sort((a, b) => a - b)[0]!;
    throw new LifeboatError(
      `no base backup finished before the target ${target.time ? target.time.toISOString() : target.lsn}; the oldest finished at ${new Date(first).toISOString()}`,
    );
  }
  return pick;
}

/** Quote for /bin/sh (only when needed). */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function confValue(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

async function ensureEmptyDir(dir: string): Promise<void> {
  try {
    const st = await fsp.stat(dir);
    if (!st.isDirectory()) throw new LifeboatError(`--to ${dir} exists and is not a directory`, 2);
    const entries = await fsp.readdir(dir);
    if (entries.length > 0) throw new LifeboatError(`--to ${dir} is not empty (${entries.length} entries); refusing to restore over existing files`, 2);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  }
  await fsp.chmod(dir, 0o700);
}

async function extractTar(input: Readable, dir: string): Promise<number> {
  const child = spawn('tar', ['-x', '-f', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
  const tail = new TailBuffer();
  child.stderr.on('data', (b: Buffer) => tail.push(b));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
  exited.catch(() => {});
  // tar may exit as soon as it has read the end-of-archive blocks, before the
  // stream ended: the rest is still read (the repository stream verifies the
  // whole snapshot, its byte count and SHA-256, at its end) but discarded.
  const stdin = child.stdin;
  let stdinGone = false;
  stdin.on('error', () => {
    stdinGone = true;
  });
  stdin.on('close', () => {
    stdinGone = true;
  });
  let tarFailed = false;
  child.on('close', (code) => {
    if (code !== 0) tarFailed = true;
  });
  let bytes = 0;
  try {
    for await (const chunk of input) {
      const b = chunk as Buffer;
      bytes += b.length;
      if (tarFailed) break; // no point reading on: reported below with tar's message
      if (stdinGone) continue;
      if (!stdin.write(b)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            stdin.off('drain', done);
            stdin.off('close', done);
            resolve();
          };
          stdin.on('drain', done);
          stdin.on('close', done);
        });
      }
    }
  } catch (err) {
    child.kill('SIGKILL');
    await exited.catch(() => null);
    throw err;
  }
  if (!stdinGone) stdin.end();
  const code = await exited;
  if (code !== 0) throw new LifeboatError(`tar failed extracting the base backup (exit ${code}): ${tail.toString()}`);
  return bytes;
}

/**
 * Restore a base backup for point-in-time recovery. The WAL the backup needs to
 * become consistent (start..end segment) must be in the archive; that is
 * checked before anything is written.
 */
export async function pgRestore(repo: Repository, opts: PgRestoreOptions): Promise<PgRestoreResult> {
  const started = Date.now();
  if (!PG_ARCHIVE_MODES.includes(opts.archiveMode)) {
    throw new LifeboatError(`archive mode must be ${PG_ARCHIVE_MODES.join(' or ')} (got ${String(opts.archiveMode)})`, 2);
  }
  const snap = await chooseBaseBackup(repo, opts);
  const src = snap.source!;
  const archive = validateArchiveName(String(src.archive ?? DEFAULT_ARCHIVE));
  const need = segmentRange(String(src.startSegment), String(src.endSegment), Number(src.walSegmentSize) || 16 * 1024 * 1024);
  for (const seg of need) {
    if (!(await repo.storage.exists('wal', walObjectId(repo, archive, seg)))) {
      throw new LifeboatError(
        `WAL segment ${seg}, needed to make base backup ${snap.id.slice(0, 8)} consistent, is not in archive "${archive}": ` +
          'is archive_command failing (see pg_stat_archiver)? Wait for the archiver, or choose another base backup',
      );
    }
  }
  const to = path.resolve(opts.to);
  await ensureEmptyDir(to);
  opts.log?.(`restoring base backup ${snap.id.slice(0, 8)} (${snap.time}, ${String(src.startLsn)}..${String(src.endLsn)}) into ${to}`);
  const bytes = await extractTar(await restoreStream(repo, snap.id), to);
  await fsp.chmod(to, 0o700);
  await fsp.rm(path.join(to, 'standby.signal'), { force: true });
  const settings: Record<string, string> = { restore_command: opts.restoreCommand };
  if (opts.target.time) settings.recovery_target_time = opts.target.time.toISOString().replace('T', ' ').replace('Z', '+00');
  else if (opts.target.lsn) settings.recovery_target_lsn = opts.target.lsn;
  if (opts.target.time || opts.target.lsn) settings.recovery_target_action = opts.target.action ?? 'promote';
  if (opts.target.timeline) settings.recovery_target_timeline = opts.target.timeline;
  if (opts.archiveMode === 'off') settings.archive_mode = 'off';
  const conf = path.join(to, 'postgresql.auto.conf');
  const block =
    `\n# Added by lifeboat pg restore (base backup ${snap.id.slice(0, 12)}, ${new Date().toISOString()}).\n` +
    Object.entries(settings)
      .map(([k, v]) => `${k} = ${confValue(v)}`)
      .join('\n') +
    '\n';
  await fsp.appendFile(conf, block);
  await fsp.writeFile(path.join(to, 'recovery.signal'), '');
  // Same owner as the restored files (e.g. postgres when restoring as root).
  const owner = await fsp.stat(path.join(to, 'PG_VERSION')).catch(() => undefined);
  if (owner && process.getuid?.() === 0) {
    for (const f of [to, conf, path.join(to, 'recovery.signal')]) await fsp.chown(f, owner.uid, owner.gid);
  }
  return { snapshot: snap, to, bytes, durationMs: Date.now() - started, settings, walChecked: need.length };
}

/** Restore entry for the source registry (`lifeboat restore --source NAME --target-dir DIR`): extraction only. */
export async function restorePgPhysical(_src: PgPhysicalOptions, input: Readable, target: Record<string, unknown>): Promise<RestoreResult> {
  const started = Date.now();
  const dir = typeof target.dir === 'string' ? target.dir : typeof target.to === 'string' ? target.to : undefined;
  if (!dir) throw new LifeboatError('restoring a postgres-physical source needs a target directory; use "lifeboat pg restore --to DIR"', 2);
  await ensureEmptyDir(dir);
  await extractTar(input, dir);
  return { durationMs: Date.now() - started, checks: { note: 'extracted only: use "lifeboat pg restore" for recovery settings' } };
}
