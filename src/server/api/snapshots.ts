import { z } from 'zod';
import { browseSnapshot, checkDatabaseRestore, checkFileRestore, contentDisposition, diffSnapshots, downloadFile, listSnapshots, liveTarget, repositoryList, restoreDatabase, restoreFiles, searchSnapshot, SEARCH_MAX_RESULTS } from '../snapshots.js';
import { HttpError, reply, sendStream, type Route, type RouteContext } from '../http.js';
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
      query: z.object({ path: z.string().max(4096).optional().describe('directory inside the snapshot (default: the deepest directory holding all backed-up paths, where the data is)') }).strict(),
      handler: async (ctx: RouteContext<{ path?: string }>) => browseSnapshot(cfg, ctx.params.repo!, ctx.params.snapshot!, ctx.query.path),
    },
    {
      method: 'GET',
      path: '/api/v1/repositories/{repo}/snapshots/{snapshot}/search',
      auth: 'viewer',
      tag: 'snapshots',
      summary: 'Find names under a directory of a snapshot (case-insensitive substring), walked on the server with a cap',
      description: `At most \`limit\` matches (max ${SEARCH_MAX_RESULTS}) and 200,000 entries visited; \`truncated\` says the search was cut short.`,
      query: z
        .object({
          q: z.string().min(1).max(200).describe('part of a file or directory name'),
          path: z.string().max(4096).default('/').describe('directory to search under (default /)'),
          limit: z.coerce.number().int().min(1).max(SEARCH_MAX_RESULTS).default(200),
        })
        .strict(),
      handler: async (ctx: RouteContext<{ q: string; path: string; limit: number }>) => searchSnapshot(cfg, ctx.params.repo!, ctx.params.snapshot!, ctx.query.path, ctx.query.q, ctx.query.limit),
    },
    {
      method: 'GET',
      path: '/api/v1/repositories/{repo}/snapshots/{snapshot}/file',
      auth: 'viewer',
      tag: 'snapshots',
      summary: 'Download one file of a snapshot (streamed from the repository, every chunk verified)',
      description: 'The body is the file\'s bytes (application/octet-stream) with Content-Length and Content-Disposition: attachment. A chunk that fails verification ends the transfer early (the client sees a short body against Content-Length).',
      query: z.object({ path: z.string().min(1).max(4096).describe('path of a regular file inside the snapshot') }).strict(),
      response: { description: 'the file', contentType: 'application/octet-stream' },
      handler: async (ctx: RouteContext<{ path: string }>) => {
        await downloadFile(cfg, ctx.params.repo!, ctx.params.snapshot!, ctx.query.path, (file, body) =>
          sendStream(ctx.res, 200, { 'content-type': 'application/octet-stream', 'content-length': String(file.size), 'content-disposition': contentDisposition(file.name), 'last-modified': new Date(file.mtime).toUTCString(), 'cache-control': 'no-store' }, ctx.req.method === 'HEAD' ? undefined : body),
        );
        return reply({ sent: true });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/repositories/{repo}/diff',
      auth: 'viewer',
      tag: 'snapshots',
      summary: 'What changed between two snapshots: added, removed, modified (the diff of `lifeboat diff`)',
      query: z.object({ from: z.string().min(1).max(100), to: z.string().min(1).max(100) }).strict(),
      handler: async (ctx: RouteContext<{ from: string; to: string }>) => diffSnapshots(cfg, ctx.params.repo!, ctx.query.from, ctx.query.to),
    },
    {
      method: 'GET',
      path: '/api/v1/sources/{source}/restore-target',
      auth: 'viewer',
      tag: 'snapshots',
      summary: 'Where a database restore without a target goes: the source\'s own (live) database, as host:port/db',
      handler: async (ctx) => liveTarget(cfg, ctx.params.source!),
    },
    {
      method: 'POST',
      path: '/api/v1/restore/check',
      auth: 'operator',
      tag: 'snapshots',
      summary: 'Check a files restore before starting it (the dialog\'s preflight): 400 bad target, 409 non-empty target without overwrite',
      body: z
        .object({
          type: z.literal('files'),
          repository: z.string().min(1),
          snapshot: z.string().min(1),
          path: z.string().max(4096).optional(),
          target: z.string().min(1),
          overwrite: z.boolean().optional(),
        })
        .strict(),
      handler: async (ctx) => checkFileRestore(cfg, ctx.body as { repository: string; snapshot: string; target: string; overwrite?: boolean }, d.server.restoreRoots),
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
          const { target } = checkFileRestore(cfg, b, d.server.restoreRoots);
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
