import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import pg from 'pg';
import { freePort, tmpdir } from './db.js';

/**
 * Private PostgreSQL clusters for tests that need a server of their own:
 * WAL archiving (PITR), streaming replicas (failover runbooks). Each cluster
 * is created with initdb as the `postgres` OS user (initdb refuses root) in a
 * temporary directory, listens on 127.0.0.1 on a free port with trust auth,
 * and is stopped and removed by stop().
 */

export const PG_BIN: string = (() => {
  const r = spawnSync('ls', ['/usr/lib/postgresql'], { encoding: 'utf8' });
  const versions = r.stdout.split(/\s+/).filter(Boolean).sort((a, b) => Number(b) - Number(a));
  return path.join('/usr/lib/postgresql', versions[0] ?? '15', 'bin');
})();

function ids(): { uid: number; gid: number } {
  return {
    uid: Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim()),
    gid: Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim()),
  };
}

/** Run a PostgreSQL binary as the postgres user; throws with its output on failure. */
export function asPostgres(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; allowFail?: boolean } = {}): { status: number; stdout: string; stderr: string } {
  const exe = path.isAbsolute(cmd) ? cmd : path.join(PG_BIN, cmd);
  const r = spawnSync('runuser', ['-u', 'postgres', '--', exe, ...args], { encoding: 'utf8', env: { ...process.env, ...opts.env } });
  const res = { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (res.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${res.status}): ${res.stderr}${res.stdout}`);
  return res;
}

/** chown a path (recursively for directories) to the postgres user. */
export async function chownToPostgres(p: string): Promise<void> {
  const { uid, gid } = ids();
  await fsp.chown(p, uid, gid);
  const st = await fsp.stat(p);
  if (st.isDirectory()) {
    for (const e of await fsp.readdir(p)) await chownToPostgres(path.join(p, e));
  }
}

export interface PgCluster {
  port: number;
  /** The data directory. */
  data: string;
  /** The cluster's own temporary directory (socket, log, data). */
  dir: string;
  log: string;
  url(database?: string): string;
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<pg.QueryResult<T>>;
  start(): void;
  /** pg_ctl stop -m fast (or immediate). */
  stopServer(mode?: 'fast' | 'immediate'): void;
  /** SIGKILL the postmaster (a crash, as in a failover drill). */
  kill(): Promise<void>;
  running(): boolean;
  /** Stop (immediate) and delete the directory. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Extra postgresql.conf settings, e.g. { archive_mode: 'on', archive_command: '...' }. */
  settings?: Record<string, string>;
  /** Create from a base backup of this cluster as a streaming replica (pg_basebackup -R). */
  replicaOf?: PgCluster;
  /** Keep an existing data directory (already prepared by the test): only configure and start. */
  existingData?: string;
  /** Do not start the server. */
  noStart?: boolean;
}

function conf(settings: Record<string, string>): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k} = '${v.replace(/'/g, "''")}'`)
    .join('\n');
}

/**
 * The files an archive or restore command names (absolute paths: the node binary, the CLI, a
 * password file) must be readable by the postgres user, or PostgreSQL retries the command
 * forever and the test hangs until its timeout: a checkout under a 0700 directory (mktemp -d)
 * does that. Refuse at once, naming the path.
 */
export function checkReadableByPostgres(settings: Record<string, string> = {}): void {
  for (const key of ['archive_command', 'restore_command']) {
    const cmd = settings[key];
    if (!cmd) continue;
    for (const tok of cmd.split(/\s+/)) {
      const p = tok.replace(/^['"]|['"]$/g, '');
      if (!path.isAbsolute(p) || p.includes('%') || !existsSync(p)) continue;
      if (asPostgres('/usr/bin/test', ['-r', p], { allowFail: true }).status !== 0) {
        throw new Error(`the postgres user cannot read ${p} (named by ${key}): a parent directory is not searchable by others (a 0700 checkout, e.g. under mktemp -d?); PostgreSQL would retry the command forever`);
      }
    }
  }
}

/** Create (initdb or pg_basebackup) and start a private cluster. */
export async function createCluster(opts: ClusterOptions = {}): Promise<PgCluster> {
  checkReadableByPostgres(opts.settings);
  const t = tmpdir('lb-pgc-');
  const { uid, gid } = ids();
  await fsp.chmod(t.dir, 0o755);
  await fsp.chown(t.dir, uid, gid);
  const data = opts.existingData ?? path.join(t.dir, 'data');
  const log = path.join(t.dir, 'log');
  const port = await freePort();
  if (opts.existingData) {
    // prepared by the test (e.g. a restore): make sure the server may use it
    await chownToPostgres(data);
    await fsp.chmod(data, 0o700);
  } else if (opts.replicaOf) {
    asPostgres('pg_basebackup', ['-h', '127.0.0.1', '-p', String(opts.replicaOf.port), '-U', 'postgres', '-D', data, '-R', '-X', 'stream', '--no-sync']);
  } else {
    asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    await fsp.appendFile(path.join(data, 'pg_hba.conf'), '\nhost replication all 127.0.0.1/32 trust\n');
  }
  const base: Record<string, string> = {
    port: String(port),
    listen_addresses: '127.0.0.1',
    unix_socket_directories: t.dir,
    fsync: 'off',
    wal_level: 'replica',
    max_wal_senders: '5',
    ...opts.settings,
  };
  await fsp.appendFile(path.join(data, 'postgresql.auto.conf'), '\n' + conf(base) + '\n');
  await chownToPostgres(path.join(data, 'postgresql.auto.conf'));
  const pools = new Map<string, pg.Pool>();
  let running = false;
  const cluster: PgCluster = {
    port,
    data,
    dir: t.dir,
    log,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres') {
      let p = pools.get(database);
      if (!p) {
        p = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database, max: 2 });
        p.on('error', () => {});
        pools.set(database, p);
      }
      return p.query<T>(sql, params);
    },
    start() {
      asPostgres('pg_ctl', ['-D', data, '-w', '-t', '120', '-l', log, 'start']);
      running = true;
    },
    stopServer(mode = 'fast') {
      asPostgres('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop'], { allowFail: true });
      running = false;
    },
    async kill() {
      const pidLine = (await fsp.readFile(path.join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]!;
      process.kill(Number(pidLine), 'SIGKILL');
      running = false;
      for (const p of pools.values()) await p.end().catch(() => {});
      pools.clear();
    },
    running: () => running,
    async stop() {
      for (const p of pools.values()) await p.end().catch(() => {});
      pools.clear();
      if (running) cluster.stopServer('immediate');
      // a killed postmaster leaves children that exit on their own; make sure
      spawnSync('pkill', ['-9', '-f', '--', `-D ${data}`]);
      t.cleanup();
    },
  };
  if (!opts.noStart) cluster.start();
  return cluster;
}
