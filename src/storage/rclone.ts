import type { ChildProcess } from 'node:child_process';
import type * as Http2 from 'node:http2';
import type * as Net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { ExitCode, LifeboatError, NotFoundError, errorMessage } from '../errors.js';
import { type FileType, type ObjectInfo, type Storage, typeDir } from './types.js';
import { AppendOnlyError, StorageTimeoutError, type StorageTimeouts, formatMs, resolveTimeouts, storageCall } from './retry.js';

/** node:http2, loaded by the first start(): requests run only on a started session. */
let http2: typeof Http2 | undefined;

/**
 * rclone backend: `rclone:REMOTE:PATH`.
 *
 * Lifeboat starts `rclone serve restic --stdio REMOTE:PATH` and speaks restic's
 * REST protocol (v2 listings) to it over the child's stdin/stdout. rclone frames
 * that connection as HTTP/2 with prior knowledge (h2c), like restic's own rclone
 * backend, so many requests share the pipe concurrently.
 *
 * Why `serve restic`: it carries every object type Lifeboat stores. Its paths are
 * generic (`/TYPE/NAME`, `/config`), so `wal/NAME` works like `index/NAME`, and
 * `data/NAME` is stored as `data/NA/NAME`: the same layout as a local
 * repository directory (docs/format.md), so a repository can be moved between
 * rclone, local and S3 with plain copies. It has `--append-only` (no delete, no
 * overwrite, except under locks/), which the other serve modes lack, and no TCP
 * port or credential to manage.
 *
 * Lifecycle: the child starts on the first request, is killed on close(), and a
 * child that dies fails every in-flight request with its exit status and the end
 * of its stderr; the next attempt (storageCall retries) starts a new child.
 * Every request runs under the shared deadline (retry.ts); rclone's own
 * --contimeout/--timeout are set from the same settings.
 */
export interface RcloneOptions {
  /** The rclone remote and path, e.g. "gdrive:backups/lifeboat" or ":sftp:/srv/repo". */
  remote: string;
  /** Human-readable location (no secrets). Default "rclone:" + remote. */
  location?: string;
  /** The rclone program. Default: env LIFEBOAT_RCLONE or "rclone". */
  program?: string;
  /** Further rclone flags (e.g. --config FILE). Never secrets: argv is visible to every user. */
  args?: string[];
  /** Extra environment for the child (RCLONE_* settings of an on-the-fly remote). */
  env?: Record<string, string>;
  /** Start rclone with --append-only: it refuses every delete and overwrite outside locks/. */
  appendOnly?: boolean;
  timeouts?: Partial<StorageTimeouts>;
  signal?: AbortSignal;
  /** Storage kind reported to the 3-2-1 checks (default 'rclone'). */
  kind?: string;
}

interface Session {
  child: ChildProcess;
  client: Http2.ClientHttp2Session;
  /** Set when the child or the connection is gone. */
  dead?: Error;
  stderr: string;
  /** Requests in flight: failed at once when the child exits. */
  pending: Set<(err: Error) => void>;
}

interface Reply {
  status: number;
  headers: Http2.IncomingHttpHeaders;
  body: Buffer;
}

/** A failure of the rclone child or of the pipe to it: worth another attempt with a fresh child. */
class RcloneTransportError extends LifeboatError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.FATAL, options);
    this.name = 'RcloneTransportError';
  }
}

/** A 5xx answer: rclone could not reach the remote (its own retries are exhausted). */
class RcloneServerError extends LifeboatError {
  constructor(message: string) {
    super(message, ExitCode.FATAL);
    this.name = 'RcloneServerError';
  }
}

const MAX_LISTING = 256 * 1024 * 1024;
const MAX_OBJECT = 4 * 1024 * 1024 * 1024;
const WINDOW = 16 * 1024 * 1024;

export class RcloneStorage implements Storage {
  readonly kind: string;
  readonly location: string;
  readonly remote: string;
  readonly appendOnly: boolean;
  readonly timeouts: StorageTimeouts;
  private readonly program: string;
  private readonly args: string[];
  private readonly env: Record<string, string>;
  private readonly signal: AbortSignal | undefined;
  private session: Session | undefined;
  private starting: Promise<Session> | undefined;
  private closed = false;

  constructor(opts: RcloneOptions) {
    if (!opts.remote || !opts.remote.includes(':')) {
      throw new LifeboatError(`rclone location needs REMOTE:PATH, got "${opts.remote}"`, ExitCode.USAGE);
    }
    this.remote = opts.remote;
    this.location = opts.location ?? `rclone:${opts.remote}`;
    this.kind = opts.kind ?? 'rclone';
    this.appendOnly = opts.appendOnly ?? false;
    this.timeouts = resolveTimeouts(opts.timeouts);
    this.program = opts.program ?? (process.env.LIFEBOAT_RCLONE || 'rclone');
    this.args = opts.args ?? [];
    this.env = opts.env ?? {};
    this.signal = opts.signal;
  }

  /** The running child, started on first use (or again after it died). */
  private connect(): Promise<Session> {
    if (this.closed) return Promise.reject(new LifeboatError(`storage ${this.location} is closed`));
    if (this.starting) return this.starting;
    if (this.session && !this.session.dead) return Promise.resolve(this.session);
    const p = this.start();
    this.starting = p;
    const clear = () => {
      if (this.starting === p) this.starting = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  /**
   * The child's stdin and stdout are both one end of a Unix socket pair (made
   * through a listener in a private temporary directory that lives for the
   * moment of the connect), the other end is ours: HTTP/2 then runs on a real
   * socket (Node's HTTP/2 over a JS stream wrapper trips an internal assertion
   * when the child dies with writes pending).
   */
  private async start(): Promise<Session> {
    const args = [
      'serve',
      'restic',
      '--stdio',
      '--contimeout',
      `${Math.ceil(this.timeouts.connectMs / 1000)}s`,
      '--timeout',
      `${Math.ceil(this.timeouts.requestMs / 1000)}s`,
      ...(this.appendOnly ? ['--append-only'] : []),
      ...this.args,
      this.remote,
    ];
    // loaded here, not at import: every command opens the storage registry, and these
    // modules (http2 brings tls and http) cost a per-segment wal-push ~50 ms of start-up
    http2 ??= await import('node:http2');
    const net = await import('node:net');
    const { spawn } = await import('node:child_process');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lb-rclone-'));
    let ours: Net.Socket;
    let theirs: Net.Socket;
    const server = net.createServer({ pauseOnConnect: true });
    try {
      const sock = path.join(dir, 's');
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(sock, () => resolve());
      });
      const accepted = new Promise<Net.Socket>((resolve) => server.once('connection', resolve));
      ours = net.connect(sock);
      await new Promise<void>((resolve, reject) => {
        ours.once('connect', resolve);
        ours.once('error', reject);
      });
      theirs = await accepted;
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
    // the child gets rclone's settings, never the repository password
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.env };
    for (const k of Object.keys(env)) if (k.startsWith('LIFEBOAT_PASSWORD')) delete env[k];
    const child = spawn(this.program, args, {
      env,
      stdio: [theirs, theirs, 'pipe'],
    });
    theirs.destroy();
    const pipe = ours;
    const client = http2.connect('http://rclone.invalid', {
      createConnection: () => pipe,
      settings: { initialWindowSize: WINDOW, maxFrameSize: 1024 * 1024 - 1 },
      // uploads of several packs at once are buffered in the session: Node's default
      // cap (10 MB) would reset streams with ENHANCE_YOUR_CALM
      maxSessionMemory: 1024,
    });
    // An idle child must not keep the process alive (a request in flight does, by
    // its deadline timer); rclone exits on EOF of its stdin when we are gone.
    child.unref();
    (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    pipe.unref();
    client.unref();
    const s: Session = { child, client, stderr: '', pending: new Set() };
    this.session = s;
    client.on('connect', () => {
      try {
        client.setLocalWindowSize(WINDOW);
      } catch {
        /* best effort */
      }
    });
    const kill = (why: Error) => {
      if (!s.dead) s.dead = why;
      client.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      s.stderr = (s.stderr + d).slice(-4000);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      kill(
        err.code === 'ENOENT'
          ? new LifeboatError(
              `cannot start rclone ("${this.program}" not found): install rclone (apt-get install rclone, or https://rclone.org/install/) or set LIFEBOAT_RCLONE to its path`,
              ExitCode.USAGE,
            )
          : new RcloneTransportError(`cannot start rclone for ${this.location}: ${err.message}`, { cause: err }),
      );
    });
    child.on('exit', (code, sig) => {
      // let the last stderr lines arrive, then fail whatever is still waiting
      setImmediate(() => {
        // the exit status says more than the broken connection that came first
        s.dead = new RcloneTransportError(`rclone (serving ${this.location}) exited ${sig ? `on signal ${sig}` : `with status ${code}`}${this.stderrTail(s)}`);
        kill(s.dead);
        for (const f of [...s.pending]) f(s.dead!);
      });
    });
    client.on('error', (err) => kill(new RcloneTransportError(`connection to rclone (${this.location}) failed: ${err.message}${this.stderrTail(s)}`, { cause: err })));
    client.on('close', () => {
      if (!s.dead) s.dead = new RcloneTransportError(`connection to rclone (${this.location}) closed${this.stderrTail(s)}`);
    });
    pipe.on('error', () => {});
    return s;
  }

  private stderrTail(s: Session): string {
    const lines = s.stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !/Config file .* not found - using defaults/.test(l));
    const tail = lines.slice(-3).join(' | ');
    return tail ? `: ${tail}` : '';
  }

  /** One HTTP/2 request to the child; the body is capped at `max` bytes. */
  private request(
    method: string,
    path: string,
    signal: AbortSignal,
    opts: { body?: Uint8Array; headers?: Record<string, string>; max?: number } = {},
  ): Promise<Reply> {
    return this.connect().then((s) => this.requestOn(s, method, path, signal, opts));
  }

  private requestOn(
    s: Session,
    method: string,
    path: string,
    signal: AbortSignal,
    opts: { body?: Uint8Array; headers?: Record<string, string>; max?: number },
  ): Promise<Reply> {
    if (s.dead) return Promise.reject(s.dead);
    if (signal.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new LifeboatError('aborted'));
    return new Promise<Reply>((resolve, reject) => {
      let done = false;
      const finish = (err: Error | undefined, reply?: Reply) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        s.pending.delete(onExit);
        if (err) reject(err);
        else resolve(reply!);
      };
      const headers: Http2.OutgoingHttpHeaders = { ':method': method, ':path': path, ...opts.headers };
      if (opts.body) headers['content-length'] = opts.body.length;
      let req: Http2.ClientHttp2Stream;
      try {
        req = s.client.request(headers, { endStream: !opts.body });
      } catch (err) {
        finish(s.dead ?? new RcloneTransportError(`request to rclone (${this.location}) failed: ${errorMessage(err)}`, { cause: err }));
        return;
      }
      const onAbort = () => {
        req.close(http2!.constants.NGHTTP2_CANCEL);
        finish(signal.reason instanceof Error ? signal.reason : new LifeboatError('aborted'));
      };
      const onExit = (err: Error) => finish(err);
      signal.addEventListener('abort', onAbort, { once: true });
      s.pending.add(onExit);
      const max = opts.max ?? MAX_OBJECT;
      const chunks: Buffer[] = [];
      let got = 0;
      let status = 0;
      let resHeaders: Http2.IncomingHttpHeaders = {};
      req.on('response', (h) => {
        status = Number(h[':status']);
        resHeaders = h;
        const len = Number(h['content-length']);
        if (method !== 'HEAD' && Number.isFinite(len) && len > max) {
          req.close(http2!.constants.NGHTTP2_CANCEL);
          finish(new LifeboatError(`rclone announced ${len} bytes for ${path}, more than the ${max} expected`));
        }
      });
      req.on('data', (c: Buffer) => {
        got += c.length;
        if (got > max) {
          req.close(http2!.constants.NGHTTP2_CANCEL);
          finish(new LifeboatError(`rclone sent more than ${max} bytes for ${path}`));
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => finish(undefined, { status, headers: resHeaders, body: Buffer.concat(chunks, got) }));
      // A broken stream: give a dying child a moment, so the error names its exit
      // status (the pending set delivers it) rather than a bare ECONNRESET.
      // When the connection itself is gone the child is most likely dying: wait up to 5 s for its exit,
      // which fails this request through s.pending with the exit status (a loaded machine may take
      // longer than a moment to report it). A stream broken on a live connection fails after 300 ms.
      const broken = (e: Error) => {
        if (done) return;
        const since = Date.now();
        const settle = () => {
          if (done) return;
          const gone = s.client.closed || s.client.destroyed;
          if (gone && Date.now() - since < 5000) {
            setTimeout(settle, 100).unref();
            return;
          }
          finish(s.child.exitCode !== null || s.child.signalCode !== null ? (s.dead ?? e) : e);
        };
        setTimeout(settle, 300).unref();
      };
      req.on('error', (err) => broken(new RcloneTransportError(`request ${method} ${path} to rclone (${this.location}) failed: ${err.message}`, { cause: err })));
      req.on('close', () => broken(new RcloneTransportError(`rclone (${this.location}) closed the request ${method} ${path} (code ${req.rstCode})`)));
      if (opts.body) req.end(opts.body);
    });
  }

  private call<T>(what: string, fn: (signal: AbortSignal, attempt: number) => Promise<T>): Promise<T> {
    let attempt = 0;
    return storageCall(
      {
        what,
        timeouts: this.timeouts,
        signal: this.signal,
        retryable: (err) => err instanceof RcloneTransportError || err instanceof RcloneServerError || err instanceof StorageTimeoutError,
        timeoutMessage: (ms, w) =>
          `rclone (${this.location}) did not answer within ${formatMs(ms)} while ${w} (set timeouts.request / LIFEBOAT_REQUEST_TIMEOUT to change the deadline)`,
      },
      (signal) => fn(signal, ++attempt),
    ).catch((err: unknown) => {
      if (err instanceof StorageTimeoutError && this.session) {
        // a silent child is not coming back: the next call starts a new one
        this.session.dead ??= err;
        this.session.client.destroy();
        this.session.child.kill('SIGKILL');
      }
      throw err;
    });
  }

  private path(type: FileType, name: string): string {
    if (type === 'config') return '/config';
    return `/${typeDir(type)}/${encodeURIComponent(name)}`;
  }

  /** Map an unexpected status to an error. */
  private fail(r: Reply, what: string): Error {
    const text = r.body.toString('utf8', 0, Math.min(r.body.length, 300)).trim();
    if (r.status === 404) return new NotFoundError(`${what} (${this.location})`);
    if (r.status >= 500) return new RcloneServerError(`rclone (${this.location}) failed while ${what}: HTTP ${r.status} ${text}${this.session ? this.stderrTail(this.session) : ''}`);
    return new LifeboatError(`rclone (${this.location}) refused ${what}: HTTP ${r.status} ${text}${this.session ? this.stderrTail(this.session) : ''}`);
  }

  async create(): Promise<void> {
    await this.call(`creating the repository at ${this.location}`, async (signal) => {
      const r = await this.request('POST', '/?create=true', signal);
      if (r.status !== 200) throw this.fail(r, 'creating the repository');
    });
  }

  async save(type: FileType, name: string, data: Uint8Array): Promise<void> {
    const p = this.path(type, name);
    await this.call(`saving ${p.slice(1)}`, async (signal, attempt) => {
      const r = await this.request('POST', p, signal, { body: data, headers: { 'content-type': 'application/octet-stream' } });
      if (r.status === 200) return;
      if (r.status === 403) {
        // a retry after an attempt whose answer was lost: our own object is already there
        if (attempt > 1 && (await this.statOnce(p, signal).catch(() => -1)) === data.length) return;
        throw new AppendOnlyError(`refused to overwrite ${p.slice(1)} in ${this.location}: the repository is append-only (rclone serve --append-only)`);
      }
      throw this.fail(r, `saving ${p.slice(1)}`);
    });
  }

  /**
   * Create-if-absent. restic's REST protocol has no conditional write: with
   * --append-only the server refuses the second writer (atomic); otherwise two
   * concurrent creators race between the check and the write.
   */
  async saveNew(type: FileType, name: string, data: Uint8Array): Promise<boolean> {
    if (await this.exists(type, name)) return false;
    try {
      await this.save(type, name, data);
      return true;
    } catch (err) {
      if (err instanceof AppendOnlyError) return false;
      throw err;
    }
  }

  async load(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const p = this.path(type, name);
    if (range) {
      if (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length < 0) {
        throw new LifeboatError(`invalid range for ${p.slice(1)}: offset ${range.offset}, length ${range.length}`);
      }
      if (range.length === 0) {
        const st = await this.stat(type, name);
        if (range.offset > st.size) throw shortRead(p, range, 0);
        return Buffer.alloc(0);
      }
    }
    return this.call(`reading ${p.slice(1)}`, async (signal) => {
      const r = await this.request('GET', p, signal, {
        ...(range ? { headers: { range: `bytes=${range.offset}-${range.offset + range.length - 1}` }, max: range.length } : {}),
      });
      if (r.status === 416) throw shortRead(p, range!, 0);
      if (r.status !== 200 && r.status !== 206) throw this.fail(r, `reading ${p.slice(1)}`);
      const len = Number(r.headers['content-length']);
      if (Number.isFinite(len) && len !== r.body.length) {
        throw new RcloneTransportError(`rclone (${this.location}) sent ${r.body.length} of ${len} bytes of ${p.slice(1)}`);
      }
      if (range) {
        if (r.status === 200) throw new LifeboatError(`rclone ignored the range request for ${p.slice(1)}`);
        if (r.body.length !== range.length) throw shortRead(p, range, r.body.length);
      }
      return r.body;
    });
  }

  private async statOnce(p: string, signal: AbortSignal): Promise<number> {
    const r = await this.request('HEAD', p, signal, { max: 0 });
    if (r.status !== 200) throw this.fail(r, `stat ${p.slice(1)}`);
    const len = Number(r.headers['content-length']);
    if (!Number.isSafeInteger(len) || len < 0) throw new LifeboatError(`rclone sent no valid size for ${p.slice(1)}`);
    return len;
  }

  async stat(type: FileType, name: string): Promise<ObjectInfo> {
    const p = this.path(type, name);
    const size = await this.call(`stat ${p.slice(1)}`, (signal) => this.statOnce(p, signal));
    return { name, size };
  }

  async exists(type: FileType, name: string): Promise<boolean> {
    try {
      await this.stat(type, name);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  async remove(type: FileType, name: string): Promise<void> {
    const p = this.path(type, name);
    await this.stat(type, name); // the contract wants NotFoundError for a missing object
    await this.call(`removing ${p.slice(1)}`, async (signal) => {
      const r = await this.request('DELETE', p, signal);
      if (r.status === 200) return;
      if (r.status === 403) {
        throw new AppendOnlyError(`refused to delete ${p.slice(1)} in ${this.location}: the repository is append-only (rclone serve --append-only)`);
      }
      throw this.fail(r, `removing ${p.slice(1)}`);
    });
  }

  async list(type: FileType): Promise<ObjectInfo[]> {
    if (type === 'config') {
      try {
        return [await this.stat('config', '')];
      } catch (err) {
        if (err instanceof NotFoundError) return [];
        throw err;
      }
    }
    const dir = typeDir(type);
    return this.call(`listing ${dir}`, async (signal) => {
      const r = await this.request('GET', `/${dir}/`, signal, { headers: { accept: 'application/vnd.x.restic.rest.v2' }, max: MAX_LISTING });
      if (r.status === 404) return [];
      if (r.status !== 200) throw this.fail(r, `listing ${dir}`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.body.toString('utf8'));
      } catch {
        throw new LifeboatError(`rclone (${this.location}) sent an invalid listing of ${dir}/`);
      }
      if (!Array.isArray(parsed)) throw new LifeboatError(`rclone (${this.location}) sent an invalid listing of ${dir}/`);
      const out: ObjectInfo[] = [];
      for (const e of parsed as Array<{ name?: unknown; size?: unknown }>) {
        if (!e || typeof e.name !== 'string' || typeof e.size !== 'number' || !Number.isSafeInteger(e.size) || e.size < 0) {
          throw new LifeboatError(`rclone (${this.location}) sent an invalid entry in the listing of ${dir}/`);
        }
        if (e.name.includes('/') || e.name === '') continue;
        out.push({ name: e.name, size: e.size });
      }
      return out;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const s = this.session ?? (await this.starting?.catch(() => undefined));
    this.session = undefined;
    if (!s) return;
    s.dead ??= new LifeboatError(`storage ${this.location} is closed`);
    await new Promise<void>((resolve) => {
      if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
      const t = setTimeout(() => s.child.kill('SIGKILL'), 5000);
      s.child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      s.client.close();
      s.child.stdin?.end();
      s.child.kill('SIGTERM');
    });
    s.client.destroy();
  }
}

function shortRead(p: string, range: { offset: number; length: number }, got: number): LifeboatError {
  return new LifeboatError(`short read of ${p.slice(1)}: wanted ${range.length} bytes at offset ${range.offset}, got ${got} (object is shorter)`);
}
