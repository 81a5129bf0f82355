import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp, readdirSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { configPath } from '../../config/paths.js';
import { LifeboatError } from '../../errors.js';
import { DEFAULT_ARCHIVE } from '../../repo/wal-names.js';
import { connectPg } from '../../util/pg-client.js';
import { pgRestore, shQuote, type PgPhysicalOptions } from './dump.js';
import { runCapture } from '../proc.js';
import { CLEANUP_QUERY_TIMEOUT_MS, type DrillCheck, type DrillTargetContext, type QueryValue, type ScratchTarget } from '../scratch.js';

/**
 * Restore drill of a `postgres-physical` source: the real point-in-time
 * recovery path, timed end to end. The base backup is extracted into a scratch
 * data directory (`lifeboat pg restore` logic: WAL needed for consistency
 * checked first), recovery is set to replay the archived WAL to its end, and a
 * private PostgreSQL server of the same major version is started on that
 * directory — listening only on a Unix socket inside the scratch directory,
 * with its own trust-only pg_hba.conf — so it fetches WAL through
 * `lifeboat wal-fetch`, replays, and promotes. The restore phase therefore
 * measures extraction + WAL replay until the server accepts writes: the RTO of
 * a PITR restore. Queries run in `drill.database` (default "postgres").
 * Archiving is always off on the scratch server (archive_mode = off): a
 * drill never pushes its new timeline's WAL into the production archive.
 * Cleanup stops the server (immediate) and removes the directory.
 *
 * When Lifeboat runs as root, the server runs as the owner of the restored
 * files (normally "postgres"), which must be able to read the repository and
 * run lifeboat (as for archive_command; see docs/pitr.md).
 */

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** pg_ctl of the snapshot's major version: source binDir, else /usr/lib/postgresql/<major>/bin, else PATH. */
export function findPgCtl(major: string, binDir?: string): string {
  const candidates = [
    ...(binDir ? [path.join(binDir, 'pg_ctl')] : []),
    path.join('/usr/lib/postgresql', major, 'bin', 'pg_ctl'),
    path.join('/usr/pgsql-' + major, 'bin', 'pg_ctl'),
  ];
  for (const c of candidates) if (existsSync(c)) return c;
  try {
    const versions = readdirSync('/usr/lib/postgresql');
    if (versions.length && !versions.includes(major)) {
      throw new LifeboatError(`PITR drill: the base backup is PostgreSQL ${major}, installed server versions: ${versions.join(', ')}`);
    }
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
  }
  const which = spawnSync('sh', ['-c', 'command -v pg_ctl'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new LifeboatError(`PITR drill: pg_ctl for PostgreSQL ${major} not found (install the server package or set the source's binDir)`);
}

export function pgPhysicalTarget(ctx: DrillTargetContext, src: PgPhysicalOptions): ScratchTarget {
  const snapMeta = (ctx.snapshot.source ?? {}) as Record<string, unknown>;
  const major = String(snapMeta.serverVersion ?? '').split('.')[0] || '15';
  const database = ctx.drill.database ?? 'postgres';
  const user = src.user;
  let dir: string | undefined;
  let data: string | undefined;
  let pgCtl: string | undefined;
  let owner: { uid: number; name: string } | undefined;
  let started = false;
  let client: pg.Client | undefined;
  let replayedTo = '';

  /**
   * pg_ctl as the data directory's owner. Asynchronous (a synchronous pg_ctl start -w blocked the whole process,
   * a daemon's other jobs and its shutdown, for up to its 10 minutes); `signal` (the drill's timeout) kills it.
   */
  const asOwner = async (args: string[], opts: { env?: NodeJS.ProcessEnv; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<{ status: number; out: string }> => {
    const cmd = owner && process.getuid?.() === 0 && owner.uid !== 0 ? ['runuser', '-u', owner.name, '--', pgCtl!, ...args] : [pgCtl!, ...args];
    const r = await runCapture(cmd[0]!, cmd.slice(1), { env: opts.env ?? process.env, timeoutMs: opts.timeoutMs ?? 10 * 60_000, allowFailure: true, tool: 'pg_ctl', ...(opts.signal ? { signal: opts.signal } : {}) });
    return { status: r.code ?? -1, out: `${r.stdout}${r.stderr}` };
  };
  const logTail = async (): Promise<string> => {
    const log = await fsp.readFile(path.join(dir!, 'server.log'), 'utf8').catch(() => '');
    return log.trim().split('\n').slice(-6).join(' | ');
  };
  const connect = async (db: string): Promise<pg.Client> => {
    // the drill's timeout (or a shutdown) ends the session at once, also while a query waits
    return connectPg({ host: dir!, port: portNum, user, database: db, connectionTimeoutMillis: 5000 }, { signal: ctx.signal });
  };
  let portNum = 0;

  return {
    get description() {
      return `PostgreSQL ${major} server on a scratch data directory${dir ? ` ${dir}` : ''} (replaying archived WAL)`;
    },
    async restore() {
      const base = ctx.drill.scratchDir ? configPath(ctx.cfg, ctx.drill.scratchDir) : tmpdir();
      await fsp.mkdir(base, { recursive: true });
      dir = await fsp.mkdtemp(path.join(base, `lifeboat-drill-${ctx.job.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
      data = path.join(dir, 'data');
      pgCtl = findPgCtl(major, src.binDir);
      const repoName = ctx.repository;
      const cli = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
      const archive = String(snapMeta.archive ?? DEFAULT_ARCHIVE);
      const restoreCommand =
        [process.execPath, cli, 'wal-fetch', '%f', '%p', '--config', ctx.cfg.file, '--repo', repoName, ...(archive !== DEFAULT_ARCHIVE ? ['--archive', archive] : [])]
          .map((p) => (p === '%f' || p === '%p' ? p : shQuote(p)))
          .join(' ');
      await pgRestore(ctx.repo, { snapshot: ctx.snapshot.id, to: data, target: {}, restoreCommand, archiveMode: 'off', log: ctx.log });
      // private: socket only, in the scratch directory; trust on that socket only
      await fsp.writeFile(path.join(data, 'pg_hba.conf'), '# lifeboat restore drill: Unix socket in the scratch directory only\nlocal all all trust\n');
      await fsp.appendFile(
        path.join(data, 'postgresql.auto.conf'),
        `\n# lifeboat restore drill\narchive_mode = off\nlisten_addresses = ''\nunix_socket_directories = '${dir.replace(/'/g, "''")}'\nhot_standby = off\n`,
      );
      const st = await fsp.stat(path.join(data, 'PG_VERSION'));
      const name = spawnSync('id', ['-nu', String(st.uid)], { encoding: 'utf8' }).stdout.trim() || 'postgres';
      owner = { uid: st.uid, name };
      if (process.getuid?.() === 0) {
        await fsp.chown(dir, st.uid, st.gid);
        for (const f of ['pg_hba.conf', 'postgresql.auto.conf']) await fsp.chown(path.join(data, f), st.uid, st.gid);
      }
      portNum = await freePort(); // names the socket file (.s.PGSQL.<port>)
      // the server's restore_command (lifeboat wal-fetch) inherits this environment: the password never touches the disk
      const env = { ...process.env, LIFEBOAT_PASSWORD: ctx.repositoryPassword() };
      // set first: an abort while pg_ctl waits for the server leaves a postmaster that cleanup must stop
      started = true;
      const r = await asOwner(['-D', data, '-l', path.join(dir, 'server.log'), '-o', `-p ${portNum}`, '-w', '-t', '600', 'start'], { env, signal: ctx.signal });
      if (r.status !== 0) throw new LifeboatError(`PITR drill: the restored server did not start: ${r.out.trim().slice(-300)}; log: ${await logTail()}`);
      // recovery replays the archive to its end, then promotes
      for (;;) {
        if (ctx.signal.aborted) throw new LifeboatError('drill aborted during WAL replay');
        try {
          client ??= await connect('postgres');
          const rec = await client.query<{ r: boolean; lsn: string }>('SELECT pg_is_in_recovery() AS r, pg_current_wal_lsn()::text AS lsn');
          if (!rec.rows[0]!.r) {
            replayedTo = rec.rows[0]!.lsn;
            break;
          }
        } catch (err) {
          // "the database system is starting up" / "not yet accepting connections": keep waiting
          await client?.end().catch(() => {});
          client = undefined;
          if (!existsSync(path.join(data, 'postmaster.pid'))) throw new LifeboatError(`PITR drill: the restored server stopped during recovery: ${await logTail()} (${(err as Error).message})`);
        }
        await new Promise((res) => setTimeout(res, 200));
      }
    },
    async integrity(): Promise<DrillCheck[]> {
      const checks: DrillCheck[] = [];
      const c = client!;
      const tl = (await c.query<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()')).rows[0]!.t;
      const endLsn = String(snapMeta.endLsn ?? '0/0');
      const reached = (await c.query<{ ok: boolean }>('SELECT $1::pg_lsn >= $2::pg_lsn AS ok', [replayedTo, endLsn])).rows[0]!.ok;
      checks.push({ name: 'recovery', ok: reached, detail: `WAL replayed and promoted (timeline ${tl}, at ${replayedTo}; base backup ended at ${endLsn})` });
      const dbs = (await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template1' ORDER BY 1")).rows.map((r) => r.datname);
      const bad: string[] = [];
      for (const d of dbs) {
        try {
          const x = await connect(d);
          await x.query('SELECT count(*) FROM pg_class');
          await x.end();
        } catch (err) {
          bad.push(`${d}: ${(err as Error).message}`);
        }
      }
      checks.push({ name: 'databases', ok: bad.length === 0, detail: bad.length ? bad.join('; ') : `${dbs.length} database(s) open: ${dbs.join(', ')}` });
      const w = await c.query('CREATE TEMP TABLE lifeboat_drill_write (x int)').then(
        () => 'accepts writes',
        (e: Error) => `refuses writes: ${e.message}`,
      );
      checks.push({ name: 'writable', ok: w === 'accepts writes', detail: w });
      return checks;
    },
    async sql(text: string): Promise<QueryValue> {
      const c = database === 'postgres' ? client! : await connect(database);
      try {
        const r = await c.query({ text, rowMode: 'array' });
        const v = (r.rows[0] as unknown[] | undefined)?.[0];
        return v === undefined || v === null ? null : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : (v as QueryValue);
      } finally {
        if (c !== client) await c.end().catch(() => {});
      }
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'postgres-physical', LIFEBOAT_DRILL_TARGET: data ?? '', PGHOST: dir ?? '', PGPORT: String(portNum), PGUSER: user, PGDATABASE: database }),
    async cleanup() {
      await client?.end().catch(() => {});
      client = undefined;
      if (started && data) await asOwner(['-D', data, '-m', 'immediate', '-w', 'stop'], { timeoutMs: CLEANUP_QUERY_TIMEOUT_MS }).catch(() => undefined);
      started = false;
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
