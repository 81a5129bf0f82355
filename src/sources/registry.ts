import type { SourceConfig } from '../config/sources.js';
import { dumpCommand, restoreCommand } from './command/dump.js';
import { filesKind } from './files/kind.js';
import type { SourceKind, StreamKind } from './kind.js';
import { dumpMongodb, restoreMongodb } from './mongodb/dump.js';
import { dumpMysql, restoreMysql } from './mysql/dump.js';
import { dumpPostgres, restorePostgres } from './postgres/dump.js';
import { dumpPgPhysical, restorePgPhysical } from './pg-physical/dump.js';
import { dumpRedis, restoreRedis } from './redis/dump.js';
import { dumpSqlite, restoreSqlite } from './sqlite/dump.js';
import { streamKind } from './stream-kind.js';
import { resolveSourcePaths } from '../config/resolve.js';
import { copyWal } from '../repo/wal.js';
import { DEFAULT_ARCHIVE } from '../repo/wal-names.js';
import { commandTarget } from './command/drill.js';
import { mysqlTarget } from './mysql/drill.js';
import { mysqlPitrTarget } from './mysql/pitr-drill.js';
import { copyBinlogs } from '../repo/binlog.js';
import { binlogArchiveName } from './mysql/binlog-coords.js';
import { pgPhysicalTarget } from './pg-physical/drill.js';
import { pgPointInTimeRestore } from './pg-physical/point-in-time.js';
import { postgresTarget } from './postgres/drill.js';
import { redisTarget } from './redis/drill.js';
import { sqliteTarget } from './sqlite/drill.js';

/**
 * Every source kind, files included, behind one interface (kind.ts): its
 * capabilities (layout, restoresTo; declared with the schemas in
 * src/config/sources.ts), backup, findSnapshot, restore and its drill target. The CLI, the
 * daemon, the server and runbooks reach them only through pipeline.ts.
 * To add a kind: its schema and capabilities in config/sources.ts, a folder
 * sources/<kind>/ (dump.ts: dump and restore tools; drill.ts: scratch target),
 * and its line here.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
export const STREAM_KINDS = {
  postgres: streamKind('postgres', (s, c) => dumpPostgres(s as any, c), (s, i, t) => restorePostgres(s as any, i, t), (ctx) => postgresTarget(ctx, resolveSourcePaths(ctx.src, ctx.cfg) as any)),
  'postgres-physical': {
    ...streamKind('postgres-physical', (s, c) => dumpPgPhysical(s as any, c), (s, i, t) => restorePgPhysical(s as any, i, t), (ctx) => pgPhysicalTarget(ctx, ctx.src as any), async (s, from, to) => {
      // point-in-time recovery from the copy needs the WAL archive too
      await copyWal(from, to, { archive: (s as any).archive ?? DEFAULT_ARCHIVE });
    }),
    restoreToPoint: pgPointInTimeRestore,
    recoveryLog: () => 'wal',
  },
  mysql: {
    ...streamKind(
      'mysql',
      (s, c) => dumpMysql(s as any, c),
      (s, i, t) => restoreMysql(s as any, i, t),
      // with drill.mysqlPitr: the dump plus archived binary logs replayed into a private mariadbd
      (ctx) => (ctx.drill.mysqlPitr ? mysqlPitrTarget(ctx, ctx.src as any) : mysqlTarget(ctx, resolveSourcePaths(ctx.src, ctx.cfg) as any)),
      async (s, from, to, name) => {
        // point-in-time recovery from the copy needs the binary log archive too
        if ((s as any).binlog) await copyBinlogs(from, to, { archive: binlogArchiveName(s as any, name) });
      },
    ),
    // with binlog: archived binary logs are recovery points (mysql restore --target-time)
    recoveryLog: (s: SourceConfig) => ((s as any).binlog ? 'binlog' : undefined),
  },
  redis: streamKind('redis', (s, c) => dumpRedis(s as any, c), (s, i, t) => restoreRedis(s as any, i, t), redisTarget),
  sqlite: streamKind('sqlite', (s, c) => dumpSqlite(s as any, c), (s, i, t) => restoreSqlite(s as any, i, t), sqliteTarget),
  mongodb: streamKind('mongodb', (s, c) => dumpMongodb(s as any, c), (s, i, t) => restoreMongodb(s as any, i, t)),
  command: streamKind('command', (s, c) => dumpCommand(s as any, c), (s, i, t) => restoreCommand(s as any, i, t as any), commandTarget),
} satisfies Record<Exclude<SourceConfig['kind'], 'files'>, StreamKind>;

export const SOURCE_KINDS: Record<SourceConfig['kind'], SourceKind> = { files: filesKind, ...STREAM_KINDS };

export function sourceKind(kind: SourceConfig['kind']): SourceKind {
  return SOURCE_KINDS[kind];
}
