import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { LifeboatError, errorMessage } from '../../errors.js';
import { requireOneOf, runCapture } from '../proc.js';

/**
 * A private MariaDB/MySQL server on a scratch data directory: used by the
 * `mysql-pitr` drill (restore + binlog replay into a server that is not the
 * live one) and by the tests. mariadb-install-db (or mysql_install_db)
 * initialises `dir/data`; mariadbd listens on 127.0.0.1:<free port> and on
 * `dir/mysqld.sock` (in a 0700 directory), with a root user without a
 * password (a throw-away server; `networking: false` keeps it off TCP). Runs as the current user (`--user=root` when that is root).
 * stop() shuts it down (SIGTERM, then SIGKILL after a grace period).
 */

export interface ScratchMysql {
  dir: string;
  port: number;
  socket: string;
  pid: number;
  /** Server error log (read it when something failed). */
  errorLog: string;
  stop(): Promise<void>;
  /** SIGKILL the server (tests: a crash). */
  kill(): Promise<void>;
}

const HINT = 'install the MariaDB server (e.g. "apt install mariadb-server") for a scratch server';

export async function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

function serverBinary(binDir?: string): string {
  for (const dir of [binDir, '/usr/sbin', '/usr/libexec', '/usr/local/mysql/bin'].filter(Boolean) as string[]) {
    for (const n of ['mariadbd', 'mysqld']) {
      try {
        return requireOneOf([n], HINT, dir);
      } catch {
        /* next */
      }
    }
  }
  return requireOneOf(['mariadbd', 'mysqld'], HINT, binDir);
}

export async function startScratchMysql(opts: { dir: string; binDir?: string; logBin?: boolean; networking?: boolean; extraArgs?: string[]; timeoutMs?: number }): Promise<ScratchMysql> {
  const dir = opts.dir;
  const data = path.join(dir, 'data');
  const socket = path.join(dir, 'mysqld.sock');
  const errorLog = path.join(dir, 'error.log');
  const asRoot = process.getuid?.() === 0;
  const install = requireOneOf(['mariadb-install-db', 'mysql_install_db'], HINT, opts.binDir);
  const mysqld = serverBinary(opts.binDir);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await runCapture(
    install,
    ['--no-defaults', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...(asRoot ? ['--user=root'] : []), '--skip-name-resolve'],
    { timeoutMs: opts.timeoutMs ?? 120_000, context: 'initialising a scratch data directory' },
  );
  const port = await freeTcpPort();
  const args = [
    '--no-defaults',
    `--datadir=${data}`,
    `--socket=${socket}`,
    ...(opts.networking === false ? ['--skip-networking'] : [`--port=${port}`, '--bind-address=127.0.0.1']),
    `--pid-file=${path.join(dir, 'mysqld.pid')}`,
    `--log-error=${errorLog}`,
    '--skip-name-resolve',
    '--innodb-buffer-pool-size=32M',
    ...(opts.logBin ? [`--log-bin=${path.join(data, 'binlog')}`, '--server-id=1', '--binlog-format=ROW'] : ['--skip-log-bin']),
    ...(asRoot ? ['--user=root'] : []),
    ...(opts.extraArgs ?? []),
  ];
  const child: ChildProcess = spawn(mysqld, args, { stdio: 'ignore', detached: true });
  let exited = false;
  const exitP = new Promise<void>((resolve) => child.on('close', () => ((exited = true), resolve())));
  child.on('error', () => {});
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const client = requireOneOf(['mariadb', 'mysql'], HINT, opts.binDir);
  for (;;) {
    if (exited) throw new LifeboatError(`the scratch MariaDB server exited while starting: ${(await fsp.readFile(errorLog, 'utf8').catch(() => '')).slice(-1000)}`);
    const r = await runCapture(client, [`--socket=${socket}`, '--user=root', '--connect-timeout=2', '-e', 'SELECT 1'], { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined);
    if (r && r.code === 0) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new LifeboatError(`the scratch MariaDB server did not accept connections within ${Math.round((opts.timeoutMs ?? 120_000) / 1000)}s`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exitP;
    clearTimeout(t);
  };
  return {
    dir,
    port,
    socket,
    pid: child.pid!,
    errorLog,
    stop,
    kill: async () => {
      if (exited) return;
      child.kill('SIGKILL');
      await exitP;
    },
  };
}

/** Stop, then remove the directory (errors only logged by the caller). */
export async function removeScratchMysql(s: ScratchMysql): Promise<void> {
  try {
    await s.stop();
  } finally {
    await fsp.rm(s.dir, { recursive: true, force: true }).catch((e: unknown) => {
      throw new LifeboatError(`removing ${s.dir}: ${errorMessage(e)}`);
    });
  }
}
