import type { Readable } from 'node:stream';
import { z } from 'zod';
import { filesSourceSchema } from '../config/schema.js';
import { commandSourceSchema, dumpCommand, restoreCommand } from './command.js';
import { dumpMongodb, mongodbSourceSchema, restoreMongodb } from './mongodb.js';
import { dumpMysql, mysqlSourceSchema, restoreMysql } from './mysql.js';
import { dumpPostgres, postgresSourceSchema, restorePostgres } from './postgres.js';
import { dumpPgPhysical, pgPhysicalSourceSchema, restorePgPhysical } from './pg-physical.js';
import type { SourceContext } from './proc.js';
import { dumpRedis, redisSourceSchema, restoreRedis } from './redis.js';
import { dumpSqlite, restoreSqlite, sqliteSourceSchema } from './sqlite.js';
import type { DumpHandle, RestoreResult } from './types.js';

/**
 * Every source kind: its config schema, and for stream kinds the dump and
 * restore functions. The CLI and the daemon look kinds up here.
 */
export const sourceSchema = z.discriminatedUnion('kind', [
  filesSourceSchema,
  postgresSourceSchema,
  pgPhysicalSourceSchema,
  mysqlSourceSchema,
  redisSourceSchema,
  sqliteSourceSchema,
  mongodbSourceSchema,
  commandSourceSchema,
]);
export type SourceConfig = z.infer<typeof sourceSchema>;
export type StreamSourceConfig = Exclude<SourceConfig, { kind: 'files' }>;

export interface StreamKind {
  dump(src: StreamSourceConfig, ctx: SourceContext): Promise<DumpHandle>;
  restore(src: StreamSourceConfig, input: Readable, target: Record<string, unknown>): Promise<RestoreResult>;
}

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
