import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ConfigError, ExitCode, IntegrityError, LifeboatError, errorMessage } from '../../errors.js';
import {
  BinlogGapError,
  binlogChain,
  binlogChainUntilGap,
  binlogSeq,
  compareBinlogNames,
  fetchBinlog,
  isBinlogName,
  listBinlogs,
  pushBinlog,
  validateBinlogName,
  type BinlogEntryWithId,
} from '../../repo/binlog.js';
import type { Repository } from '../../repo/repository.js';
import type { SnapshotWithId } from '../../repo/snapshot.js';
import { binlogArchiveName, type BinlogCoordinates } from './binlog-coords.js';
import { mysqlSourceSchema } from '../../config/sources.js';
import { connArgs, connFrom, findClients, myEnv, myIdent, query, restoreMysql, type MyConn, type MysqlRestoreTarget, type MysqlSourceInput, type MysqlSourceOptions } from './dump.js';
import { parseOptions, probeTcp, requireOneOf, resolvePassword, runCapture, runWithInput, spawnTool, TailBuffer } from '../proc.js';
import { restoreStream } from '../stream.js';

/**
 * MySQL/MariaDB point-in-time recovery (docs/pitr.md, "MySQL / MariaDB").
 *
 * - Archive: complete (rotated) binary logs are copied from the server with
 *   `mariadb-binlog --read-from-remote-server --raw` (the replication protocol:
 *   Lifeboat need not run on the database host) and stored in the repository
 *   (src/repo/binlog.ts) after a position check: the copy parses as a sequence
 *   of whole events ending with a ROTATE event, and its size equals the size
 *   the server reports (SHOW BINARY LOGS). One-shot mode (`--once`, for cron):
 *   FLUSH BINARY LOGS, then copy every closed file not archived yet.
 *   Streaming mode: `--stop-never` into a spool directory; every file that
 *   becomes complete there is archived and removed from the spool.
 * - Restore: the newest dump whose binlog coordinates precede the target, then
 *   the archived binary logs from those coordinates, replayed with
 *   `mariadb-binlog --start-position … --stop-datetime|--stop-position … | mariadb`.
 *   Every file is fetched and verified before anything is written to the
 *   target; a gap in the sequence is refused (exit code 6).
 */

const INSTALL_HINT = 'install the MariaDB or MySQL client (e.g. "apt install mariadb-client") or set binDir';
const ROTATE_EVENT = 4;
const HEADER = 19;

export function binlogTool(binDir?: string): string {
  return requireOneOf(['mariadb-binlog', 'mysqlbinlog'], INSTALL_HINT, binDir);
}

// ---------------------------------------------------------------- binlog file structure

export interface BinlogScan {
  /** Size of the file. */
  size: number;
  events: number;
  /** Every event header was whole and the events end exactly at the end of the file. */
  whole: boolean;
  /** The last event is a ROTATE event: the server closed this file. */
  rotated: boolean;
  /** Timestamp (seconds since the epoch) of the last event, 0 if none. */
  lastTimestamp: number;
  firstTimestamp: number;
}

/**
 * Walk the event headers of a binary log file (v4 format: 4-byte magic, then
 * events with a 19-byte header: timestamp u32, type u8, server id u32, event
 * size u32, next position u32, flags u16). Every size is checked against the
 * file; the walk is bounded by the file size (each event is at least 19 bytes).
 */
export async function scanBinlog(file: string): Promise<BinlogScan> {
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const res: BinlogScan = { size, events: 0, whole: false, rotated: false, lastTimestamp: 0, firstTimestamp: 0 };
    const magic = Buffer.alloc(4);
    if (size < 4 || (await fh.read(magic, 0, 4, 0)).bytesRead !== 4 || magic.toString('latin1') !== '\xfebin') return res;
    const hdr = Buffer.alloc(HEADER);
    let pos = 4;
    let lastType = -1;
    while (pos + HEADER <= size) {
      if ((await fh.read(hdr, 0, HEADER, pos)).bytesRead !== HEADER) return res;
      const evSize = hdr.readUInt32LE(9);
      if (evSize < HEADER || pos + evSize > size) return res;
      const ts = hdr.readUInt32LE(0);
      if (res.events === 0) res.firstTimestamp = ts;
      res.lastTimestamp = ts;
      lastType = hdr[4]!;
      res.events++;
      pos += evSize;
    }
    res.whole = pos === size;
    res.rotated = res.whole && lastType === ROTATE_EVENT;
    return res;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------- server side

export interface ServerBinlog {
  name: string;
  size: number;
}

interface Ctx {
  o: MysqlSourceOptions;
  conn: MyConn;
  client: string;
  binlog: string;
  archive: string;
}

function context(input: MysqlSourceInput | MysqlSourceOptions, sourceName: string | undefined, what: string): Ctx {
  const o = parseOptions(mysqlSourceSchema, input, what);
  const conn = connFrom(o, resolvePassword(o, what));
  return { o, conn, client: findClients(o.binDir, false).client, binlog: binlogTool(o.binDir), archive: binlogArchiveName(o, sourceName) };
}

/** SHOW BINARY LOGS: the server's binary logs, oldest first (the last one is being written). */
export async function serverBinlogs(c: Ctx): Promise<ServerBinlog[]> {
  const rows = await query(c.client, c.conn, 'SHOW BINARY LOGS;', 'listing the binary logs');
  const out: ServerBinlog[] = [];
  for (const r of rows) {
    const name = r[0] ?? '';
    const size = Number(r[1]);
    if (!isBinlogName(name) || !Number.isSafeInteger(size) || size < 0) throw new LifeboatError(`SHOW BINARY LOGS returned an unexpected row: ${JSON.stringify(r).slice(0, 200)}`);
    out.push({ name, size });
  }
  if (!out.length) throw new LifeboatError('the server has no binary logs: turn binary logging on (log_bin) for point-in-time recovery');
  return out;
}

function remoteArgs(c: Ctx): string[] {
  // mariadb-binlog reads the password from MYSQL_PWD (myEnv), never argv
  return ['--read-from-remote-server', ...connArgs(c.conn), '--raw'];
}

/** Copy one closed binary log from the server into `dir` (file dir/<name>). */
async function downloadBinlog(c: Ctx, name: string, dir: string, timeoutMs: number): Promise<string> {
  const dest = path.join(dir, name);
  await fsp.rm(dest, { force: true });
  await runCapture(c.binlog, [...remoteArgs(c), `--result-file=${dir}${path.sep}`, '--', name], {
    env: myEnv(c.conn),
    timeoutMs,
    context: `copying binary log ${name} from the server`,
  });
  return dest;
}

/** Archive a complete spooled/downloaded binary log, after the position check. */
async function archiveFile(repo: Repository, c: Ctx, file: string, serverSize: number | undefined): Promise<{ status: string; size: number }> {
  const name = path.basename(file);
  const scan = await scanBinlog(file);
  if (!scan.rotated) {
    throw new LifeboatError(`binary log ${name}: the copy (${scan.size} bytes, ${scan.events} events) does not end with the server's ROTATE event; not archiving an incomplete file`);
  }
  const r = await pushBinlog(repo, file, { archive: c.archive, reloadIndex: true, ...(serverSize !== undefined ? { expectedSize: serverSize } : {}) });
  return { status: r.status, size: r.entry.size };
}

export interface OnceResult {
  archive: string;
  archived: Array<{ name: string; size: number }>;
  alreadyArchived: number;
  /** The binary log being written (not archived). */
  current: string;
}

function newestArchived(entries: BinlogEntryWithId[], base: string): string | undefined {
  const same = entries.filter((e) => binlogSeq(e.name).base === base);
  return same.length ? same[same.length - 1]!.name : undefined;
}

/**
 * One-shot archive (cron): FLUSH BINARY LOGS (closes the current file, unless
 * flush is false), then copy and archive every closed binary log newer than the
 * newest one archived (all of them when none is).
 */
export async function archiveBinlogsOnce(
  repo: Repository,
  input: MysqlSourceInput | MysqlSourceOptions,
  opts: { sourceName?: string; flush?: boolean; spoolDir?: string; log?: (m: string) => void; timeoutMs?: number } = {},
): Promise<OnceResult> {
  const c = context(input, opts.sourceName, `mysql source${opts.sourceName ? ` ${opts.sourceName}` : ''}`);
  if (!c.conn.socket) await probeTcp(c.conn.host, c.conn.port, 'MySQL/MariaDB', c.conn.connectTimeout * 1000);
  if (opts.flush !== false) await query(c.client, c.conn, 'FLUSH BINARY LOGS;', 'closing the current binary log (FLUSH BINARY LOGS)');
  const server = await serverBinlogs(c);
  const current = server[server.length - 1]!;
  const have = await listBinlogs(repo, { archive: c.archive });
  const newest = newestArchived(have, binlogSeq(current.name).base);
  const closed = server.slice(0, -1).filter((f) => !newest || compareBinlogNames(f.name, newest) > 0);
  if (newest && closed.length && binlogSeq(closed[0]!.name).seq !== binlogSeq(newest).seq + 1) {
    opts.log?.(`warning: binary logs after ${newest} up to ${closed[0]!.name} are no longer on the server: the archive has a gap there (take a new dump)`);
  }
  const res: OnceResult = { archive: c.archive, archived: [], alreadyArchived: 0, current: current.name };
  const dir = await fsp.mkdtemp(path.join(opts.spoolDir ?? tmpdir(), 'lifeboat-binlog-'));
  try {
    for (const f of closed) {
      const file = await downloadBinlog(c, f.name, dir, opts.timeoutMs ?? 3_600_000);
      const r = await archiveFile(repo, c, file, f.size);
      await fsp.rm(file, { force: true });
      if (r.status === 'stored') {
        res.archived.push({ name: f.name, size: r.size });
        opts.log?.(`archived ${f.name} (${r.size} bytes)`);
      } else res.alreadyArchived++;
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
  return res;
}

/**
 * The replication server id the streaming mariadb-binlog registers with: stable
 * per archive (a restarted archiver replaces its own old connection) and far
 * from the small ids servers and replicas usually have.
 */
export function streamerServerId(archive: string): number {
  const h = createHash('sha256').update(`lifeboat-binlog\0${archive}`).digest();
  return 4_200_000_000 + (h.readUInt32BE(0) % 90_000_000);
}

export interface StreamOptions {
  sourceName?: string;
  /** Spool directory (created; holds the binary log being streamed). */
  spoolDir?: string;
  signal?: AbortSignal;
  /** How often the spool is looked at (default 500 ms). */
  pollMs?: number;
  /** FLUSH BINARY LOGS this often (0/undefined: never), so the current file is closed and archived. */
  flushIntervalMs?: number;
  /** Replication server id mariadb-binlog registers with (default: streamerServerId(archive)). */
  serverId?: number;
  log?: (m: string) => void;
  onArchived?: (name: string, size: number) => void;
}

/**
 * Streaming archive: `mariadb-binlog --read-from-remote-server --raw
 * --stop-never` writes the server's binary logs into the spool directory as
 * they are written; each file that is complete (ends with the ROTATE event and
 * has the size the server reports) is archived and removed from the spool.
 * Restarts the stream (after a back-off) when it ends, e.g. the server
 * restarted. Returns when `signal` aborts, after archiving what is complete.
 */
export async function streamBinlogs(repo: Repository, input: MysqlSourceInput | MysqlSourceOptions, opts: StreamOptions = {}): Promise<void> {
  const c = context(input, opts.sourceName, `mysql source${opts.sourceName ? ` ${opts.sourceName}` : ''}`);
  const spool = opts.spoolDir ?? path.join(tmpdir(), `lifeboat-binlog-spool-${c.archive}`);
  await fsp.mkdir(spool, { recursive: true, mode: 0o700 });
  const log = opts.log ?? (() => {});
  const pollMs = opts.pollMs ?? 500;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      opts.signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  let child: ChildProcess | undefined;
  let childExited: Promise<void> = Promise.resolve();
  let childTail = new TailBuffer();
  let lastFlush = Date.now();
  let backoff = 1000;

  const spooled = async (): Promise<string[]> => (await fsp.readdir(spool)).filter(isBinlogName).sort(compareBinlogNames);

  /** Archive every complete file in the spool (all but the newest, unless the stream has stopped). */
  const drain = async (all: boolean): Promise<void> => {
    const files = await spooled();
    const candidates = all ? files : files.slice(0, -1);
    if (!candidates.length) return;
    const sizes = new Map((await serverBinlogs(c).catch(() => [] as ServerBinlog[])).map((f) => [f.name, f.size]));
    for (const name of candidates) {
      const file = path.join(spool, name);
      const scan = await scanBinlog(file);
      if (!scan.rotated) {
        if (!all) log(`spooled ${name} is not complete yet (${scan.size} bytes)`);
        continue;
      }
      const r = await archiveFile(repo, c, file, sizes.get(name));
      await fsp.rm(file, { force: true });
      if (r.status === 'stored') {
        log(`archived ${name} (${r.size} bytes)`);
        opts.onArchived?.(name, r.size);
      }
    }
  };

  const startStream = async (): Promise<void> => {
    const server = await serverBinlogs(c);
    const have = await listBinlogs(repo, { archive: c.archive });
    const newest = newestArchived(have, binlogSeq(server[0]!.name).base);
    // resume after the newest archived file (or at the oldest file the server still has)
    const next = server.find((f) => !newest || compareBinlogNames(f.name, newest) > 0) ?? server[server.length - 1]!;
    if (newest && binlogSeq(next.name).seq !== binlogSeq(newest).seq + 1) {
      log(`warning: binary logs after ${newest} up to ${next.name} are no longer on the server: the archive has a gap there (take a new dump)`);
    }
    // partial files from an earlier stream are fetched again from their start
    for (const f of await spooled()) if (compareBinlogNames(f, next.name) >= 0) await fsp.rm(path.join(spool, f), { force: true });
    const args = [...remoteArgs(c), '--stop-never', `--stop-never-slave-server-id=${opts.serverId ?? streamerServerId(c.archive)}`, `--result-file=${spool}${path.sep}`, '--', next.name];
    childTail = new TailBuffer();
    const ch = spawn(c.binlog, args, { env: myEnv(c.conn), stdio: ['ignore', 'ignore', 'pipe'] });
    child = ch;
    ch.stderr!.on('data', (b: Buffer) => childTail.push(b));
    childExited = new Promise((resolve) => {
      ch.on('error', (e) => {
        childTail.push(Buffer.from(errorMessage(e)));
        resolve();
      });
      ch.on('close', () => resolve());
    });
    log(`streaming binary logs from ${next.name} into ${spool}`);
  };

  try {
    while (!opts.signal?.aborted) {
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        if (child) {
          log(`the binlog stream ended (${childTail.toString().trim().split('\n').slice(-1)[0] ?? 'no message'}); restarting in ${backoff / 1000}s`);
          await drain(true).catch((e: unknown) => log(`archiving failed: ${errorMessage(e)}`));
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 60_000);
          if (opts.signal?.aborted) break;
        }
        try {
          await startStream();
        } catch (err) {
          log(`cannot start the binlog stream: ${errorMessage(err)}`);
          child = undefined;
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 60_000);
          continue;
        }
      }
      await sleep(pollMs);
      if (opts.signal?.aborted) break;
      try {
        if (opts.flushIntervalMs && Date.now() - lastFlush >= opts.flushIntervalMs) {
          lastFlush = Date.now();
          await query(c.client, c.conn, 'FLUSH BINARY LOGS;', 'FLUSH BINARY LOGS');
        }
        await drain(false);
        backoff = 1000;
      } catch (err) {
        log(`archiving failed: ${errorMessage(err)}`);
      }
    }
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await childExited;
    await drain(true).catch((e: unknown) => log(`archiving failed: ${errorMessage(e)}`));
  }
}

// ---------------------------------------------------------------- restore

export interface MysqlPitrTarget {
  time?: Date;
  position?: { file: string; pos: number };
}

export function parseBinlogPosition(s: string): { file: string; pos: number } {
  const m = /^(.+):(\d{1,19})$/.exec(s.trim());
  const pos = m ? Number(m[2]) : NaN;
  if (!m || !isBinlogName(m[1]!) || !Number.isSafeInteger(pos) || pos < 4) {
    throw new ConfigError(`--target-position "${s}": expected FILE:POS, e.g. mysql-bin.000042:1234`);
  }
  return { file: m[1]!, pos };
}

function coordsOf(s: SnapshotWithId): BinlogCoordinates | undefined {
  const b = s.source?.binlog as Partial<BinlogCoordinates> | undefined;
  if (!b || typeof b.file !== 'string' || !isBinlogName(b.file) || !Number.isSafeInteger(b.pos) || typeof b.time !== 'string' || typeof b.archive !== 'string') return undefined;
  if (Number.isNaN(Date.parse(b.time))) return undefined;
  return b as BinlogCoordinates;
}

function before(c: BinlogCoordinates, p: { file: string; pos: number }): boolean {
  const d = compareBinlogNames(c.file, p.file);
  return d < 0 || (d === 0 && c.pos <= p.pos);
}

/** The dump to start from: the newest of `sourceName` whose coordinates precede the target (or the given one, checked). */
export async function chooseMysqlDump(repo: Repository, sourceName: string, target: MysqlPitrTarget, snapshotRef?: string): Promise<{ snap: SnapshotWithId; coords: BinlogCoordinates }> {
  const ok = (s: SnapshotWithId, c: BinlogCoordinates) => (target.time ? Date.parse(c.time) <= target.time.getTime() : target.position ? before(c, target.position) : true);
  if (snapshotRef) {
    const s = await repo.findSnapshot(snapshotRef);
    if (s.source?.kind !== 'mysql' || s.source.name !== sourceName) throw new LifeboatError(`snapshot ${s.id.slice(0, 8)} is not a dump of mysql source ${sourceName}`, ExitCode.USAGE);
    const c = coordsOf(s);
    if (!c) throw new LifeboatError(`snapshot ${s.id.slice(0, 8)} has no binary log coordinates (it was taken without binlog: in the source's config)`, ExitCode.USAGE);
    if (!ok(s, c)) throw new LifeboatError(`snapshot ${s.id.slice(0, 8)} (coordinates ${c.file}:${c.pos}, ${c.time}) is not before the target`, ExitCode.USAGE);
    return { snap: s, coords: c };
  }
  const cands: Array<{ snap: SnapshotWithId; coords: BinlogCoordinates }> = [];
  for (const s of await repo.listSnapshots()) {
    if (s.source?.kind !== 'mysql' || s.source.name !== sourceName) continue;
    const c = coordsOf(s);
    if (c && ok(s, c)) cands.push({ snap: s, coords: c });
  }
  cands.sort((a, b) => compareBinlogNames(a.coords.file, b.coords.file) || a.coords.pos - b.coords.pos || Date.parse(a.coords.time) - Date.parse(b.coords.time));
  const best = cands.at(-1);
  if (!best) {
    throw new LifeboatError(
      `no dump of mysql source ${sourceName} with binary log coordinates is before the target ` +
        `(${target.time ? target.time.toISOString() : target.position ? `${target.position.file}:${target.position.pos}` : 'latest'}); dumps record coordinates when the source has a binlog: section`,
    );
  }
  return best;
}

/** "YYYY-MM-DD HH:MM:SS" in UTC, rounded UP to the second (binlog timestamps are whole seconds). */
export function stopDatetime(t: Date): string {
  const s = new Date(Math.ceil(t.getTime() / 1000) * 1000);
  return s.toISOString().slice(0, 19).replace('T', ' ');
}

export interface MysqlPitrResult {
  snapshot: SnapshotWithId;
  coords: BinlogCoordinates;
  files: string[];
  bytes: number;
  database?: string;
  durationMs: number;
  replayMs: number;
}

/**
 * Restore a dump and replay archived binary logs up to the target. Every
 * binary log is fetched and verified into a private temporary directory
 * BEFORE the target is touched; a gap is refused (exit 6), as is a target
 * beyond the end of the archive. A single-database dump restored under another
 * name replays only that database's events, rewritten to the new name.
 */
export async function mysqlPitrRestore(
  repo: Repository,
  sourceName: string,
  input: MysqlSourceInput | MysqlSourceOptions,
  opts: { target: MysqlPitrTarget; snapshot?: string; to?: MysqlRestoreTarget; workDir?: string; log?: (m: string) => void },
): Promise<MysqlPitrResult> {
  const started = Date.now();
  const log = opts.log ?? (() => {});
  const o = parseOptions(mysqlSourceSchema, input, `mysql source ${sourceName}`);
  if (o.databases) {
    throw new ConfigError(
      `mysql source ${sourceName} dumps a list of databases: point-in-time recovery supports a single database (database:) or all databases (neither), whose binary log events can be replayed without touching other databases`,
    );
  }
  if (opts.target.time && opts.target.position) throw new ConfigError('give --target-time or --target-position, not both');
  if (opts.target.position) validateBinlogName(opts.target.position.file);
  const { snap, coords } = await chooseMysqlDump(repo, sourceName, opts.target, opts.snapshot);
  log(`dump ${snap.id.slice(0, 8)} (${snap.time}) at binary log ${coords.file}:${coords.pos}`);
  const entries = await listBinlogs(repo, { archive: coords.archive });
  // an archiver may have published entries since the repository was opened: an
  // entry is published after the index that covers its blobs, so reading the
  // index again now covers every entry just listed
  await repo.reloadIndex();
  let chain: BinlogEntryWithId[];
  let gap: BinlogGapError | undefined;
  if (opts.target.position) {
    chain = binlogChain(entries, coords.file, opts.target.position.file);
    if (chain.at(-1)!.name !== opts.target.position.file) {
      throw new BinlogGapError(`binary log ${opts.target.position.file} is not archived (the archive "${coords.archive}" ends at ${chain.at(-1)!.name})`);
    }
  } else ({ chain, gap } = binlogChainUntilGap(entries, coords.file));
  if (!opts.target.time && !opts.target.position && gap) throw gap;
  const tool = binlogTool(o.binDir);
  const work = await fsp.mkdtemp(path.join(opts.workDir ?? tmpdir(), 'lifeboat-pitr-'));
  try {
    await fsp.chmod(work, 0o700);
    const files: string[] = [];
    let bytes = 0;
    const want = opts.target.time ? Math.ceil(opts.target.time.getTime() / 1000) : undefined;
    let last: BinlogScan | undefined;
    for (const e of chain) {
      const dest = path.join(work, e.name);
      await fetchBinlog(repo, e, dest);
      files.push(dest);
      bytes += e.size;
      last = await scanBinlog(dest);
      if (!last.whole) throw new IntegrityError(`archived binary log ${e.name} is not a whole sequence of events`);
      // a time target is covered once a file was closed (ROTATE event) at or after it: later files are not needed
      if (want !== undefined && last.rotated && last.lastTimestamp >= want) break;
    }
    log(`fetched and verified ${files.length} binary log(s) (${bytes} bytes): ${path.basename(files[0]!)} … ${path.basename(files.at(-1)!)}`);
    if (opts.target.position && opts.target.position.pos > last!.size) {
      throw new LifeboatError(`--target-position ${opts.target.position.file}:${opts.target.position.pos} is beyond the end of that file (${last!.size} bytes)`, ExitCode.USAGE);
    }
    if (opts.target.position && opts.target.position.file === coords.file && opts.target.position.pos < coords.pos) {
      throw new LifeboatError(`--target-position is before the dump's coordinates ${coords.file}:${coords.pos}`, ExitCode.USAGE);
    }
    if (want !== undefined && (!last!.rotated || last!.lastTimestamp < want)) {
      if (gap) throw gap;
      throw new BinlogGapError(
        `the binary log archive "${coords.archive}" ends at ${new Date(last!.lastTimestamp * 1000).toISOString()} (${path.basename(files.at(-1)!)}), before the target ${opts.target.time!.toISOString()}: ` +
          'archive the newer binary logs first (lifeboat mysql binlog-archive SOURCE --once), or choose an earlier target',
      );
    }

    // 1. the dump
    const to = { ...(opts.to ?? {}) };
    const stream = await restoreStream(repo, snap.id);
    const dumpResult = await restoreMysql(o, stream, to);
    const database = o.database ? (to.database ?? o.database) : undefined;
    log(`dump restored${database ? ` into database "${database}"` : ''}`);

    // 2. the binary logs
    // Replayed transactions keep their original GTIDs (as with any "mariadb-binlog | mariadb"). The archive may
    // itself hold out-of-order GTIDs (e.g. an earlier point-in-time restore into the same server): read it anyway.
    const args = [`--start-position=${coords.pos}`];
    const help = await runCapture(tool, ['--help'], { allowFailure: true, timeoutMs: 30_000 }).catch(() => undefined);
    if (help?.stdout.includes('--gtid-strict-mode')) args.push('--skip-gtid-strict-mode');
    if (opts.target.time) args.push(`--stop-datetime=${stopDatetime(opts.target.time)}`);
    if (opts.target.position) args.push(`--stop-position=${opts.target.position.pos}`);
    if (o.database) {
      args.push(`--database=${o.database}`);
      if (database !== o.database) args.push(`--rewrite-db=${o.database}->${database}`);
    }
    args.push('--', ...files);
    const password =
      to.passwordEnv !== undefined || to.passwordFile !== undefined
        ? resolvePassword({ ...(to.passwordEnv ? { passwordEnv: to.passwordEnv } : {}), ...(to.passwordFile ? { passwordFile: to.passwordFile } : {}) }, 'mysql restore target')
        : resolvePassword(o, `mysql source ${sourceName}`);
    const conn = connFrom(
      { host: to.host ?? o.host, port: to.port ?? o.port, user: to.user ?? o.user, connectTimeout: o.connectTimeout, ...((to.socket ?? o.socket) ? { socket: to.socket ?? o.socket } : {}) },
      password,
    );
    const { client } = findClients(o.binDir, false);
    const replayStarted = Date.now();
    const dec = spawnTool(tool, args, { env: { ...process.env, TZ: 'UTC' }, ...(to.signal ? { signal: to.signal } : {}) });
    dec.done.catch(() => {});
    try {
      await runWithInput(client, [...connArgs(conn), `--connect-timeout=${conn.connectTimeout}`, '--binary-mode', '--max-allowed-packet=1073741824'], dec.stream, {
        tool: path.basename(client),
        env: myEnv(conn),
        context: 'replaying binary logs',
        ...(to.signal ? { signal: to.signal } : {}),
      });
      await dec.done;
    } catch (err) {
      dec.abort();
      let note = `\nPOINT-IN-TIME RECOVERY FAILED while replaying binary logs: the target holds the dump plus a PARTIAL replay.`;
      if (database && dumpResult.checks?.created) {
        await query(client, conn, `DROP DATABASE IF EXISTS ${myIdent(database)};`, 'dropping the incomplete database').catch(() => {});
        note = `\nPOINT-IN-TIME RECOVERY FAILED while replaying binary logs; the database "${database}" created for this restore was dropped again.`;
      } else if (database) note += ` Drop or re-restore database "${database}".`;
      if (err instanceof LifeboatError) {
        err.message += note;
        throw err;
      }
      throw new LifeboatError(`${errorMessage(err)}${note}`);
    }
    const replayMs = Date.now() - replayStarted;
    log(`replayed ${files.length} binary log(s) in ${replayMs} ms`);
    return { snapshot: snap, coords, files: files.map((f) => path.basename(f)), bytes, ...(database ? { database } : {}), durationMs: Date.now() - started, replayMs };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}
