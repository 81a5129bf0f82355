import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import { requireTool } from '../proc.js';
import { parseKeyspace, RespClient } from './dump.js';
import { resolveSourcePaths } from '../../config/resolve.js';
import { snapshotStream, scratchDir, meta, type DrillCheck, type DrillTargetContext, type ScratchTarget } from '../scratch.js';
import { restoreRedis } from './dump.js';

/** Restore drill target of a redis source (see ../scratch.ts and src/verify/drill.ts). */

/** Tolerance for key counts: keys may expire or be written between INFO and the RDB transfer. */
export const REDIS_KEY_TOLERANCE = 0.01;

export function redisTarget(ctx: DrillTargetContext): ScratchTarget {
  const o = ctx.src as { binDir?: string };
  let dir: string | undefined;
  let child: ChildProcess | undefined;
  let exited: Promise<void> | undefined;
  let client: RespClient | undefined;
  let rdbCheck: string | undefined;
  const sock = () => path.join(dir!, 'redis.sock');
  return {
    get description() {
      return `private redis-server on ${dir ? sock() : 'a scratch Unix socket'}`;
    },
    async restore() {
      dir = await scratchDir(ctx);
      const r = await restoreRedis(resolveSourcePaths(ctx.src, ctx.cfg) as Parameters<typeof restoreRedis>[0], await snapshotStream(ctx), { file: path.join(dir, 'dump.rdb') });
      rdbCheck = r.checks?.rdbCheck as string | undefined;
      const bin = requireTool('redis-server', 'install redis-server or set binDir', o.binDir);
      const logFile = path.join(dir, 'redis.log');
      child = spawn(
        bin,
        ['--port', '0', '--unixsocket', sock(), '--unixsocketperm', '700', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--databases', '256', '--logfile', logFile],
        { stdio: 'ignore' },
      );
      let dead = false;
      exited = new Promise<void>((resolve) => {
        child!.once('exit', () => resolve());
        child!.once('error', () => resolve());
      }).then(() => {
        dead = true;
      });
      // Loading a large RDB takes as long as it takes: wait while the server is alive.
      for (;;) {
        if (ctx.signal.aborted) throw new LifeboatError('drill aborted while redis-server was loading the backup');
        if (dead) {
          const log = await fsp.readFile(logFile, 'utf8').catch(() => '');
          throw new LifeboatError(`the scratch redis-server could not load the backup:\n  ${log.trim().split('\n').slice(-8).join('\n  ')}`);
        }
        try {
          const cl = await RespClient.connect({ path: sock() }, 2000, 'scratch redis-server');
          const pong = await cl.send('PING');
          if (pong === 'PONG') {
            client = cl;
            return;
          }
          cl.close();
        } catch {
          /* not up yet */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async integrity() {
      const checks: DrillCheck[] = [];
      if (rdbCheck) checks.push({ name: 'redis-check-rdb', ok: true, detail: 'the restored RDB passed redis-check-rdb' });
      const info = await client!.call('INFO', 'keyspace');
      const keyspace = parseKeyspace(Buffer.isBuffer(info) ? info.toString('utf8') : String(info));
      const got = [...keyspace.values()].reduce((a, k) => a + k.keys, 0);
      const m = meta(ctx);
      const want = typeof m.totalKeys === 'number' ? m.totalKeys : undefined;
      checks.push({ name: 'loaded', ok: true, detail: `redis-server loaded the RDB: ${got} key(s) in ${keyspace.size} database(s)` });
      if (want !== undefined) {
        const diff = Math.abs(got - want);
        const ok = diff <= Math.max(0, Math.floor(want * REDIS_KEY_TOLERANCE)) && !(want > 0 && got === 0);
        const perDb = (m.keys ?? {}) as Record<string, number>;
        const dbDiffs = Object.entries(perDb)
          .filter(([db, n]) => (keyspace.get(Number(db.replace(/^db/, '')))?.keys ?? 0) !== n)
          .map(([db, n]) => `${db}: ${keyspace.get(Number(db.replace(/^db/, '')))?.keys ?? 0} (recorded ${n})`);
        checks.push({
          name: 'key count',
          ok,
          detail: `${got} key(s) restored, ${want} recorded at backup${dbDiffs.length ? `; ${dbDiffs.slice(0, 8).join(', ')}` : ''}${ok ? '' : ` (more than ${REDIS_KEY_TOLERANCE * 100}% apart)`}`,
        });
      }
      return checks;
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'redis', LIFEBOAT_DRILL_TARGET: dir ? sock() : '', LIFEBOAT_DRILL_REDIS_SOCKET: dir ? sock() : '' }),
    async cleanup() {
      if (client) {
        await client.send('SHUTDOWN', 'NOSAVE').catch(() => undefined);
        client.close();
        client = undefined;
      }
      if (child && exited) {
        child.kill('SIGKILL');
        await exited;
      }
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
