import type { Readable } from 'node:stream';
import { dumpCommand, restoreCommand } from './command.js';
import { dumpMongodb, restoreMongodb } from './mongodb.js';
import { dumpMysql, restoreMysql } from './mysql.js';
import { dumpPostgres, restorePostgres } from './postgres.js';
import { dumpPgPhysical, restorePgPhysical } from './pg-physical.js';
import type { SourceContext } from './proc.js';
import { dumpRedis, restoreRedis } from './redis.js';
import { dumpSqlite, restoreSqlite } from './sqlite.js';
import type { DumpHandle, RestoreResult } from './types.js';
import type { SourceConfig, StreamSourceConfig } from '../config/sources.js';
export { sourceSchema, type SourceConfig, type StreamSourceConfig } from '../config/sources.js';

export interface StreamKind {
  dump(src: StreamSourceConfig, ctx: SourceContext): Promise<DumpHandle>;
  restore(src: StreamSourceConfig, input: Readable, target: Record<string, unknown>): Promise<RestoreResult>;
}

/**
 * The dump and restore functions of every stream source kind (the config
 * schemas of the kinds are in src/config/sources.ts). The CLI and the daemon
 * look kinds up here.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
export const STREAM_KINDS: Record<StreamSourceConfig['kind'], StreamKind> = {
  postgres: { dump: (s, c) => dumpPostgres(s as any, c), restore: (s, i, t) => restorePostgres(s as any, i, t) },
  'postgres-physical': { dump: (s, c) => dumpPgPhysical(s as any, c), restore: (s, i, t) => restorePgPhysical(s as any, i, t) },
  mysql: { dump: (s, c) => dumpMysql(s as any, c), restore: (s, i, t) => restoreMysql(s as any, i, t) },
  redis: { dump: (s, c) => dumpRedis(s as any, c), restore: (s, i, t) => restoreRedis(s as any, i, t) },
  sqlite: { dump: (s, c) => dumpSqlite(s as any, c), restore: (s, i, t) => restoreSqlite(s as any, i, t) },
  mongodb: { dump: (s, c) => dumpMongodb(s as any, c), restore: (s, i, t) => restoreMongodb(s as any, i, t) },
  command: { dump: (s, c) => dumpCommand(s as any, c), restore: (s, i, t) => restoreCommand(s as any, i, t) },
};
