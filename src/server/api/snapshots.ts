import { z } from 'zod';
import { browseSnapshot, checkDatabaseRestore, checkFileRestore, listSnapshots, repositoryList, restoreDatabase, restoreFiles } from '../snapshots.js';
import { HttpError, reply, type Route, type RouteContext } from '../http.js';
import { type ApiDeps, taskJson, when } from './common.js';

/** API routes tagged "snapshots": repositories, snapshots, browsing and restores. */
export function snapshotRoutes(d: ApiDeps): Route[] {
  const { cfg, tasks } = d;
  return [
    {
      method: 'GET',
      path: '/api/v1/repositories',
      auth: 'viewer',
      tag: 'snapshots',
      summary: 'Configured repositories (name, kind, off-site)',
      handler: async () => repositoryList(cfg),
    },
    {
      method: 'GET',
      path: '/api/v1/repositories/{repo}/snapshots',
      auth: 'viewer',
      tag: 'snapshots',
      summary: 'Snapshots of a repository, newest first',
      query: z.object({ source: z.string().optional() }).strict(),
      handler: async (ctx: RouteContext<{ source?: string }>) => listSnapshots(cfg, ctx.params.repo!, ctx.query.source ? { source: ctx.query.source } : {}),
    },
    {
      method: 'GET',
      path: '/api/v1/repositories/{repo}/snapshots/{snapshot}/tree',
      auth: 'viewer',
      tag: 'snapshots',
      summary: 'Directory listing of a path inside a snapshot',
      query: z.object({ path: z.string().max(4096).default('/').describe('directory inside the snapshot (default /)') }).strict(),
      handler: async (ctx: RouteContext<{ path: string }>) => browseSnapshot(cfg, ctx.params.repo!, ctx.params.snapshot!, ctx.query.path),
    },
    {
      method: 'POST',
      path: '/api/v1/restore',
      auth: 'operator',
      tag: 'snapshots',
      status: 202,
      summary: 'Restore files into a directory, or a database source into a database (background task)',
      description:
        '`confirm` must repeat the destination exactly: the target directory (type files) or `toDatabase` (type database; the source name when restoring into the source\'s own database). Files restores refuse a non-empty target unless `overwrite` is true, and verify every restored file against the snapshot.',
      body: z.discriminatedUnion('type', [
        z
          .object({
            type: z.literal('files'),
            repository: z.string().min(1),
            snapshot: z.string().min(1).describe('snapshot id, unique prefix or "latest"'),
            path: z.string().max(4096).optional().describe('path inside the snapshot (default /)'),
            target: z.string().min(1).describe('absolute directory to restore into'),
            overwrite: z.boolean().optional(),
            confirm: z.string().describe('must equal target'),
          })
          .strict(),
        z
          .object({
            type: z.literal('database'),
            source: z.string().min(1),
            snapshot: z.string().min(1).default('latest'),
            repository: z.string().optional(),
            toDatabase: z.string().optional().describe('target database name / URL without password / file (default: the source\'s own database)'),
            clean: z.boolean().optional(),
            force: z.boolean().optional(),
            confirm: z.string().describe('must equal toDatabase (or the source name)'),
          })
          .strict(),
      ]),
      handler: async (ctx) => {
        const b = ctx.body as
          | { type: 'files'; repository: string; snapshot: string; path?: string; target: string; overwrite?: boolean; confirm: string }
          | { type: 'database'; source: string; snapshot: string; repository?: string; toDatabase?: string; clean?: boolean; force?: boolean; confirm: string };
        if (b.type === 'files') {
          if (b.confirm !== b.target) throw new HttpError(400, 'confirmation required: "confirm" must repeat the target directory exactly');
          const target = checkFileRestore(cfg, b, d.server.restoreRoots);
          const t = await tasks.start('restore', `restore ${b.repository}:${b.snapshot.slice(0, 8)}${b.path ?? ''} to ${target}`, ctx.actor, { ...b, target }, ({ log }) => restoreFiles(cfg, b, target, log));
          return reply({ status: 202, json: taskJson(t) });
        }
        const expected = b.toDatabase ?? b.source;
        if (b.confirm !== expected) throw new HttpError(400, `confirmation required: "confirm" must repeat ${b.toDatabase ? 'toDatabase' : 'the source name'} exactly`);
        const target = checkDatabaseRestore(cfg, b, d.server.restoreRoots);
        const t = await tasks.start('restore', `restore source ${b.source} (${b.snapshot})${b.toDatabase ? ` into ${b.toDatabase}` : ''}`, ctx.actor, { ...b }, ({ log }) => restoreDatabase(cfg, b, target, log));
        return reply({ status: 202, json: taskJson(t) });
      },
    },
  ];
}
