import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { z } from 'zod';
import { ExitCode, IntegrityError, LifeboatError } from '../../errors.js';
import {
  findExecutable,
  formatHostPort,
  parseOptions,
  probeTcp,
  requireTool,
  resolvePassword,
  runCapture,
  spawnTool,
  TailBuffer,
  toolVersion,
  type SourceContext,
} from '../proc.js';
import type { DumpHandle, RestoreResult } from '../types.js';
import { redisSourceSchema } from '../../config/sources.js';
import { streamToNewFile } from '../../util/new-file.js';

/**
 * Redis source.
 *
 * Backup: `redis-cli --rdb -` asks the server for a full RDB snapshot over the
 * replication protocol (SYNC, rdb-only) and writes it to stdout; the stream is
 * the RDB file itself. With diskless replication (the default since Redis 7)
 * the transfer ends with a 40-byte EOF marker that redis-cli 7.0 leaves on
 * stdout (it only truncates files); we hold back the tail and cut the stream
 * to the payload size redis-cli reports, then check that it ends with the RDB
 * EOF opcode. Needs redis-cli >= 7.0 and permission to run SYNC (managed
 * services often forbid it).
 *
 * Restore, two ways:
 *  - `file`: write the RDB atomically to a path (for a server restart with
 *    that dbfilename); checked with redis-check-rdb when available.
 *  - into a running server: the RDB is loaded into a private temporary
 *    redis-server (unix socket only, in a 0700 temp dir — redis-server can
 *    only load an RDB from disk, so restore writes one temp file), then every
 *    key is copied to the target with MIGRATE ... COPY REPLACE (which keeps
 *    TTLs), database by database, and the key counts are compared. Non-empty
 *    target databases are refused unless `clean` (FLUSHDB first) or `force`.
 *    The temporary server needs memory for the whole dataset.
 *
 * Key counts per database (INFO keyspace) are recorded with the backup.
 * The password goes to redis-cli in REDISCLI_AUTH, never on the command line.
 */

export type RedisSourceOptions = z.output<typeof redisSourceSchema>;
export type RedisSourceInput = z.input<typeof redisSourceSchema>;

const INSTALL_HINT = 'install the Redis tools (e.g. "apt install redis-tools", or redis-server for restores) or set binDir';

// ------------------------------------------------------------------ RESP client

export class RespError extends Error {
  override name = 'RespError';
}

export type RespValue = string | number | Buffer | null | RespError | RespValue[];

/**
 * A minimal RESP2 client (enough for AUTH, INFO, SELECT, SCAN, DBSIZE,
 * MIGRATE, SHUTDOWN) so the library needs no Redis driver dependency.
 */
export class RespClient {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: Array<{ resolve: (v: RespValue) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  private closedErr: Error | undefined;
  /**
   * Milliseconds a reply may take (each command's deadline): past it the connection is closed and
   * every command waiting on it fails. Short while connecting (AUTH, PING); long enough for a
   * FLUSHDB or a MIGRATE batch (whose own idle timeout is 60 s) otherwise.
   */
  replyTimeoutMs = 10 * 60_000;

  private constructor(
    private readonly sock: net.Socket,
    private readonly label: string,
  ) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.drain();
    });
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('connection closed')));
  }

  private fail(e: Error): void {
    this.closedErr ??= e;
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.closedErr);
    }
  }

  static connect(where: { host: string; port: number } | { path: string }, timeoutMs: number, what: string): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const sock = 'path' in where ? net.connect({ path: where.path }) : net.connect({ host: where.host, port: where.port });
      const label = 'path' in where ? where.path : formatHostPort(where.host, where.port);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new LifeboatError(`cannot connect to ${what} at ${label}: no answer within ${Math.round(timeoutMs / 1000)}s`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.setNoDelay(true);
        resolve(new RespClient(sock, `${what} at ${label}`));
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new LifeboatError(`cannot connect to ${what} at ${label}: ${e.code === 'ECONNREFUSED' ? 'connection refused (is the server running?)' : e.message}`));
      });
    });
  }

  /** Send a command; resolves with the reply (error replies are returned as RespError, not thrown). */
  send(...args: Array<string | Buffer | number>): Promise<RespValue> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
      const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
      parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
    }
    const cmd = String(args[0] ?? '');
    const ms = this.replyTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new LifeboatError(`${this.label}: no reply to ${cmd} within ${ms >= 1000 ? `${Math.round(ms / 1000)}s` : `${ms} ms`}; connection closed`));
        this.sock.destroy();
      }, ms);
      timer.unref(); // the socket keeps the process alive while it is open, not the deadline
      this.waiting.push({ resolve, reject, timer });
      this.sock.write(Buffer.concat(parts));
    });
  }

  /** Like send, but throws error replies. */
  async call(...args: Array<string | Buffer | number>): Promise<RespValue> {
    const r = await this.send(...args);
    if (r instanceof RespError) throw r;
    return r;
  }

  close(): void {
    this.sock.destroy();
  }

  private drain(): void {
    while (this.waiting.length) {
      const r = parseResp(this.buf, 0);
      if (!r) return;
      this.buf = this.buf.subarray(r.end);
      const w = this.waiting.shift()!;
      clearTimeout(w.timer);
      w.resolve(r.value);
    }
  }
}

function parseResp(b: Buffer, at: number): { value: RespValue; end: number } | undefined {
  if (at >= b.length) return undefined;
  const nl = b.indexOf('\r\n', at);
  if (nl < 0) return undefined;
  const type = String.fromCharCode(b[at]!);
  const line = b.toString('utf8', at + 1, nl);
  const next = nl + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RespError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (b.length < next + n + 2) return undefined;
      return { value: b.subarray(next, next + n), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const arr: RespValue[] = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const r = parseResp(b, pos);
        if (!r) return undefined;
        arr.push(r.value);
        pos = r.end;
      }
      return { value: arr, end: pos };
    }
    default:
      throw new LifeboatError(`unexpected reply from Redis (type byte ${JSON.stringify(type)})`);
  }
}

function str(v: RespValue): string {
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

/** Parse "db0:keys=12,expires=3,avg_ttl=0" lines of INFO keyspace. */
export function parseKeyspace(info: string): Map<number, { keys: number; expires: number }> {
  const out = new Map<number, { keys: number; expires: number }>();
  for (const m of info.matchAll(/^db(\d+):keys=(\d+),expires=(\d+)/gm)) out.set(Number(m[1]), { keys: Number(m[2]), expires: Number(m[3]) });
  return out;
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

interface RedisConn {
  host: string;
  port: number;
  user?: string;
  password?: string;
  connectTimeout: number;
}

/**
 * Connect and authenticate, turning auth failures into clear errors. A
 * password given for a server that has none configured is not an error
 * (`authenticated` is then false and no password is passed on).
 */
async function connectRedis(c: RedisConn): Promise<{ client: RespClient; authenticated: boolean }> {
  await probeTcp(c.host, c.port, 'Redis', c.connectTimeout * 1000);
  const cl = await RespClient.connect({ host: c.host, port: c.port }, c.connectTimeout * 1000, 'Redis');
  const at = formatHostPort(c.host, c.port);
  let authenticated = c.password !== undefined;
  // the handshake's replies come at once from a live server: a server that accepts and then says nothing fails here
  const replyTimeoutMs = cl.replyTimeoutMs;
  cl.replyTimeoutMs = c.connectTimeout * 1000;
  try {
    if (c.password !== undefined) {
      const r = c.user ? await cl.send('AUTH', c.user, c.password) : await cl.send('AUTH', c.password);
      if (r instanceof RespError && !c.user && /without any password configured|no password is set/i.test(r.message)) authenticated = false;
      else if (r instanceof RespError) {
        throw new LifeboatError(`cannot connect to Redis at ${at}${c.user ? ` as ${c.user}` : ''}: authentication failed (${r.message.replace(/^(WRONGPASS|ERR) /, '')})`);
      }
    }
    const ping = await cl.send('PING');
    if (ping instanceof RespError) {
      if (/^NOAUTH/.test(ping.message)) throw new LifeboatError(`cannot connect to Redis at ${at}: the server requires a password (set passwordEnv or passwordFile)`);
      throw new LifeboatError(`Redis at ${at} answered PING with an error: ${ping.message}`);
    }
    cl.replyTimeoutMs = replyTimeoutMs;
    return { client: cl, authenticated };
  } catch (err) {
    cl.close();
    throw err;
  }
}

/**
 * Cuts redis-cli's stdout to the RDB payload: holds back the last bytes until
 * the payload size is known (from redis-cli's final message), drops the
 * diskless EOF marker if present, and checks the RDB framing.
 */
class RdbTrimmer extends Transform {
  private held = Buffer.alloc(0);
  private emitted = 0;
  private head = Buffer.alloc(0);
  constructor(private readonly payloadSize: () => Promise<number | undefined>) {
    super();
  }
  private static readonly HOLD = 64;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.head.length < 5) this.head = Buffer.concat([this.head, chunk.subarray(0, 5 - this.head.length)]);
    const all = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
    const out = all.length - RdbTrimmer.HOLD;
    if (out > 0) {
      this.push(all.subarray(0, out));
      this.emitted += out;
      this.held = Buffer.from(all.subarray(out));
    } else {
      this.held = Buffer.from(all);
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    this.payloadSize().then(
      (n) => {
        const total = this.emitted + this.held.length;
        if (n === undefined) return cb(new LifeboatError('redis-cli did not report the size of the RDB transfer (redis-cli 7.0 or newer is required)'));
        const remaining = n - this.emitted;
        if (remaining < 0 || remaining > this.held.length || (total !== n && total !== n + 40)) {
          return cb(new IntegrityError(`RDB stream from redis-cli has ${total} bytes but the transfer reported ${n}`));
        }
        if (this.head.toString('latin1') !== 'REDIS') return cb(new IntegrityError('the stream from redis-cli is not an RDB file (no REDIS header)'));
        const last = this.held.subarray(0, remaining);
        // RDB >= 5 ends with the EOF opcode 0xFF followed by an 8-byte CRC64.
        if (remaining >= 9 && last[remaining - 9] !== 0xff) return cb(new IntegrityError('the RDB stream from redis-cli does not end with the RDB EOF marker'));
        this.push(last);
        cb();
      },
      (err: Error) => cb(err),
    );
  }
}

/** Start `redis-cli --rdb -` with the RDB as the stream. */
export async function dumpRedis(input: RedisSourceInput | RedisSourceOptions, ctx: SourceContext = {}): Promise<DumpHandle> {
  const what = `redis source${ctx.name ? ` ${ctx.name}` : ''}`;
  const o = parseOptions(redisSourceSchema, input, what);
  const password = resolvePassword(o, what);
  const cli = requireTool('redis-cli', INSTALL_HINT, o.binDir);
  const tv = await toolVersion(cli);
  if (Number(tv.split('.')[0]) < 7) throw new LifeboatError(`redis-cli ${tv} cannot stream an RDB to stdout; redis-cli 7.0 or newer is required (set binDir)`);
  const conn: RedisConn = { host: o.host, port: o.port, ...(o.user ? { user: o.user } : {}), ...(password !== undefined ? { password } : {}), connectTimeout: o.connectTimeout };
  const { client: cl } = await connectRedis(conn);
  let serverInfo: string;
  let keyspace: Map<number, { keys: number; expires: number }>;
  try {
    serverInfo = str(await cl.call('INFO', 'server'));
    keyspace = parseKeyspace(str(await cl.call('INFO', 'keyspace')));
  } finally {
    cl.close();
  }
  const serverVersion = infoField(serverInfo, 'redis_version') ?? 'unknown';

  let reportSize!: (n: number | undefined) => void;
  const sizeKnown = new Promise<number | undefined>((resolve) => (reportSize = resolve));
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.REDISCLI_AUTH;
  if (password !== undefined) env.REDISCLI_AUTH = password;
  const args = ['-h', o.host, '-p', String(o.port), ...(o.user ? ['--user', o.user] : []), '--no-auth-warning', '--rdb', '-'];
  let payload: number | undefined;
  const run = spawnTool(cli, args, {
    tool: 'redis-cli',
    env,
    transform: new RdbTrimmer(() => sizeKnown),
    signal: ctx.signal,
    onSuccess: () => {
      const keys = Object.fromEntries([...keyspace].map(([db, k]) => [`db${db}`, k.keys]));
      return { keys, totalKeys: [...keyspace.values()].reduce((a, k) => a + k.keys, 0), rdbBytes: payload };
    },
  });
  run.child.once('close', () => {
    // Diskless: "Transfer finished with success after N bytes"; disk-based: "writing N bytes to '-'".
    const tail = run.stderrTail();
    const m = /Transfer finished with success after (\d+) bytes/.exec(tail) ?? /SYNC sent to master, writing (\d+) bytes to/.exec(tail);
    payload = m ? Number(m[1]) : undefined;
    reportSize(payload);
  });
  return {
    stream: run.stream,
    done: run.done,
    meta: {
      kind: 'redis',
      ...(ctx.name ? { name: ctx.name } : {}),
      host: o.host,
      port: o.port,
      serverVersion,
      tool: 'redis-cli',
      toolVersion: tv,
      format: 'rdb',
    },
    filename: o.filename ?? 'dump.rdb',
    abort: run.abort,
  };
}

// ------------------------------------------------------------------ restore

export interface RedisRestoreTarget {
  /** Write the RDB to this path instead of loading it into a server. */
  file?: string;
  host?: string;
  port?: number;
  user?: string;
  passwordEnv?: string;
  passwordFile?: string;
  /** FLUSHDB each target database that the backup has keys in, before copying. */
  clean?: boolean;
  /** Copy into non-empty databases (keys of the backup replace same-named keys). With `file`: overwrite the file. */
  force?: boolean;
  /** Directory for the temporary RDB and server (default: system temp dir). */
  tmpDir?: string;
  /** Keys per MIGRATE call (default 500). */
  batch?: number;
  signal?: AbortSignal;
}

async function writeRdbFile(stream: Readable, dest: string, force: boolean, binDir: string | undefined): Promise<RestoreResult & { checks: Record<string, unknown> }> {
  const started = Date.now();
  const existing = await fsp.stat(dest).catch(() => undefined);
  if (existing && !force) {
    stream.destroy();
    throw new LifeboatError(`refusing to overwrite existing file ${dest}; restore to another path or use force`, ExitCode.USAGE);
  }
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.lifeboat-${randomBytes(6).toString('hex')}.tmp`);
  try {
    await streamToNewFile(stream, tmp);
    const fh = await fsp.open(tmp, 'r+');
    let size: number;
    try {
      await fh.sync();
      size = (await fh.stat()).size;
      const head = Buffer.alloc(5);
      await fh.read(head, 0, 5, 0);
      if (head.toString('latin1') !== 'REDIS') throw new IntegrityError(`restored data for ${dest} is not an RDB file (no REDIS header)`);
    } finally {
      await fh.close();
    }
    const checks: Record<string, unknown> = { file: dest, bytes: size };
    const checker = binDir ? findExecutable(path.join(binDir, 'redis-check-rdb')) : findExecutable('redis-check-rdb');
    if (checker) {
      const r = await runCapture(checker, [tmp], { tool: 'redis-check-rdb', allowFailure: true, timeoutMs: 3_600_000 });
      if (r.code !== 0) throw new IntegrityError(`redis-check-rdb rejected the restored RDB:\n  ${(r.stdout + r.stderr).trim().split('\n').slice(-10).join('\n  ')}`);
      checks.rdbCheck = 'ok';
    }
    await fsp.rename(tmp, dest);
    const dh = await fsp.open(path.dirname(dest), 'r');
    await dh.sync().finally(() => dh.close());
    return { durationMs: Date.now() - started, checks };
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/** A private redis-server on a unix socket, loading `dir/dump.rdb`. */
interface TempServer {
  client: RespClient;
  child: ChildProcess;
  exited: Promise<void>;
}

async function startTempServer(serverBin: string, dir: string, signal: AbortSignal | undefined, started: (t: Omit<TempServer, 'client'>) => void): Promise<RespClient> {
  const sock = path.join(dir, 'redis.sock');
  const logFile = path.join(dir, 'redis.log');
  const child = spawn(
    serverBin,
    [
      '--port', '0',
      '--unixsocket', sock,
      '--unixsocketperm', '700',
      '--dir', dir,
      '--dbfilename', 'dump.rdb',
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--databases', '256',
      '--logfile', logFile,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const errTail = new TailBuffer();
  child.stderr!.on('data', (b: Buffer) => errTail.push(b));
  let exited = false;
  const exitedP = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  }).then(() => {
    exited = true;
  });
  started({ child, exited: exitedP });
  const log = async (): Promise<string> => {
    const text = await fsp.readFile(logFile, 'utf8').catch(() => '');
    return [text.trim().split('\n').slice(-8).join('\n'), errTail.toString()].filter(Boolean).join('\n');
  };
  // Loading a large RDB takes as long as it takes: wait while the server is alive and loading.
  for (;;) {
    if (signal?.aborted) {
      child.kill('SIGKILL');
      throw new LifeboatError('Redis restore was aborted');
    }
    if (exited) throw new LifeboatError(`the temporary redis-server could not load the backup:\n  ${(await log()).split('\n').join('\n  ')}`);
    let cl: RespClient | undefined;
    try {
      cl = await RespClient.connect({ path: sock }, 2000, 'temporary redis-server');
      const r = await cl.send('PING');
      if (r === 'PONG') return cl;
      cl.close();
    } catch {
      cl?.close();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Restore an RDB stream: to a file (`target.file`) or into a running Redis
 * (default: the source's host/port) via a temporary redis-server and MIGRATE.
 */
export async function restoreRedis(input: RedisSourceInput | RedisSourceOptions, stream: Readable, target: RedisRestoreTarget = {}): Promise<RestoreResult> {
  const started = Date.now();
  const o = parseOptions(redisSourceSchema, input, 'redis source');
  if (target.file) return writeRdbFile(stream, path.resolve(target.file), !!target.force, o.binDir);

  const password =
    target.passwordEnv !== undefined || target.passwordFile !== undefined
      ? resolvePassword({ ...(target.passwordEnv ? { passwordEnv: target.passwordEnv } : {}), ...(target.passwordFile ? { passwordFile: target.passwordFile } : {}) }, 'redis restore target')
      : resolvePassword(o, 'redis source');
  const user = target.user ?? o.user;
  const conn: RedisConn = { host: target.host ?? o.host, port: target.port ?? o.port, ...(user ? { user } : {}), ...(password !== undefined ? { password } : {}), connectTimeout: o.connectTimeout };
  const at = formatHostPort(conn.host, conn.port);
  const batch = target.batch ?? 500;
  const serverBin = requireTool('redis-server', INSTALL_HINT, o.binDir);
  const { client: dst, authenticated } = await connectRedis(conn);
  const work = await fsp.mkdtemp(path.join(target.tmpDir ?? tmpdir(), 'lifeboat-redis-'));
  let temp: Omit<TempServer, 'client'> | undefined;
  let src: RespClient | undefined;
  try {
    await fsp.chmod(work, 0o700);
    const targetVersion = infoField(str(await dst.call('INFO', 'server')), 'redis_version') ?? 'unknown';
    await streamToNewFile(stream, path.join(work, 'dump.rdb'));
    src = await startTempServer(serverBin, work, target.signal, (t) => (temp = t));
    const keyspace = parseKeyspace(str(await src.call('INFO', 'keyspace')));
    const dbs = [...keyspace.keys()].sort((a, b) => a - b);

    // Safety: which target databases already hold keys?
    const busy: string[] = [];
    for (const db of dbs) {
      const sel = await dst.send('SELECT', db);
      if (sel instanceof RespError) throw new LifeboatError(`target Redis at ${at} cannot select database ${db} (the backup has keys there): ${sel.message}`);
      const n = Number(await dst.call('DBSIZE'));
      if (n > 0) busy.push(`db${db} (${n} keys)`);
    }
    if (busy.length && !target.clean && !target.force) {
      throw new LifeboatError(`refusing to restore into Redis at ${at}: ${busy.join(', ')} not empty; use clean (FLUSHDB those databases first) or force (copy over, replacing same-named keys)`, ExitCode.USAGE);
    }
    if (target.clean) {
      for (const db of dbs) {
        await dst.call('SELECT', db);
        await dst.call('FLUSHDB');
      }
    }
    const auth: string[] = password === undefined || !authenticated ? [] : user ? ['AUTH2', user, password] : ['AUTH', password];
    const restored: Record<string, number> = {};
    let total = 0;
    for (const db of dbs) {
      await src.call('SELECT', db);
      let cursor = '0';
      do {
        if (target.signal?.aborted) throw new LifeboatError('Redis restore was aborted');
        const [next, keys] = (await src.call('SCAN', cursor, 'COUNT', batch)) as [Buffer, Buffer[]];
        cursor = str(next);
        if (keys.length === 0) continue;
        const r = await src.send('MIGRATE', conn.host, conn.port, '', db, 60_000, 'COPY', 'REPLACE', ...auth, 'KEYS', ...keys);
        if (r instanceof RespError) throw new LifeboatError(`copying keys to Redis at ${at} (database ${db}) failed: ${r.message}`);
      } while (cursor !== '0');
      // Verify: every key of the backup arrived (SCAN may return a key twice, so count on both sides).
      const want = Number(await src.call('DBSIZE'));
      await dst.call('SELECT', db);
      const got = Number(await dst.call('DBSIZE'));
      if (busy.length && !target.clean ? got < want : got !== want) {
        throw new IntegrityError(`Redis restore verification failed for database ${db}: the backup has ${want} keys, the target has ${got}`);
      }
      restored[`db${db}`] = want;
      total += want;
    }
    await dst.call('SELECT', 0);
    return { durationMs: Date.now() - started, checks: { keys: restored, totalKeys: total, verified: true, targetVersion } };
  } finally {
    dst.close();
    if (src) {
      await src.send('SHUTDOWN', 'NOSAVE').catch(() => undefined);
      src.close();
    }
    if (temp) {
      temp.child.kill('SIGKILL');
      await temp.exited;
    }
    await fsp.rm(work, { recursive: true, force: true });
  }
}
