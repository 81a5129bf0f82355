import { z } from 'zod';
import { runDrill } from '../../verify/drill.js';
import { getDrill, listDrills, recordDrill } from '../../verify/drill-store.js';
import { jobRepository } from '../../config/repos.js';
import { listSnapshots } from '../snapshots.js';
import { TaskFailure } from '../tasks.js';
import { HttpError, reply, type Route, type RouteContext } from '../http.js';
import { type ApiDeps, intParam, knownJob, limit, taskJson } from './common.js';

/** API routes tagged "drills": restore drills. */
export function drillRoutes(d: ApiDeps): Route[] {
  const { cfg, catalog, tasks } = d;
  return [
    {
      method: 'GET',
      path: '/api/v1/drills',
      auth: 'viewer',
      tag: 'drills',
      summary: 'Restore drills, newest first',
      query: z.object({ job: z.string().optional(), limit }).strict(),
      handler: async (ctx: RouteContext<{ job?: string; limit?: number }>) => listDrills(catalog, { ...(ctx.query.job ? { job: ctx.query.job } : {}), limit: ctx.query.limit ?? 100 }),
    },
    {
      method: 'GET',
      path: '/api/v1/drills/{id}',
      auth: 'viewer',
      tag: 'drills',
      summary: 'One drill with phases and checks',
      handler: async (ctx) => {
        const r = await getDrill(catalog, intParam(ctx.params.id, 'id'));
        if (!r) throw new HttpError(404, `no drill ${ctx.params.id}`);
        return r;
      },
    },
    {
      method: 'POST',
      path: '/api/v1/drills',
      auth: 'operator',
      tag: 'drills',
      status: 202,
      summary: 'Start a restore drill of a job (background task)',
      body: z.object({ job: z.string().min(1), snapshot: z.string().optional() }).strict(),
      handler: async (ctx) => {
        const { job, snapshot } = ctx.body as { job: string; snapshot?: string };
        knownJob(cfg, job);
        const busy = tasks.busy('drill', 'job', job);
        if (busy) throw new HttpError(409, `a drill of ${job} is already running (task ${busy.id})`);
        if (!snapshot || snapshot === 'latest') {
          // refuse up front, with the reason, rather than record a drill that restored nothing
          const jobCfg = cfg.jobs[job]!;
          const repoName = jobRepository(cfg, jobCfg);
          const snaps = await listSnapshots(cfg, repoName, { source: jobCfg.source });
          if (!snaps.length) throw new HttpError(409, `job ${job} has no snapshot of source ${jobCfg.source} in repository ${repoName} yet: run a backup before a drill`);
        }
        const t = await tasks.start('drill', `drill ${job}`, ctx.actor, { job, ...(snapshot ? { snapshot } : {}) }, async ({ log, signal }) => {
          const r = await runDrill(d.plan, job, { catalog, signal, log, ...(snapshot ? { snapshot } : {}) });
          if (r.id === undefined) await recordDrill(catalog, r);
          const result = { drillId: r.id ?? null, status: r.status, restoreMs: r.restoreMs, rtoMs: r.rtoMs, rtoMet: r.rtoMet, error: r.error ?? null };
          return r.status === 'success' ? result : new TaskFailure(`drill of ${job} failed: ${r.error ?? 'checks failed'}`, result);
        });
        return reply({ status: 202, json: taskJson(t) });
      },
    },
  ];
}
