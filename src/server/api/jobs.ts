import { describeSchedule } from '../../util/schedule.js';
import { z } from 'zod';
import { RUN_KINDS, type RunKind } from '../../ops/catalog/types.js';
import { firstRunFromCatalog, runJob } from '../../ops/jobs.js';
import { catalogHooks } from '../../ops/service.js';
import { TaskFailure } from '../tasks.js';
import { HttpError, reply, type Route, type RouteContext } from '../http.js';
import { type ApiDeps, intParam, knownJob, limit, runJson, taskJson } from './common.js';

/** API routes tagged "jobs": jobs, their run history, running a job now. */
export function jobRoutes(d: ApiDeps): Route[] {
  const { cfg, plan, catalog, tasks } = d;
  return [
    {
      method: 'GET',
      path: '/api/v1/jobs',
      auth: 'viewer',
      tag: 'jobs',
      summary: 'Jobs of the plan with their last run',
      handler: async () =>
        Promise.all(
          Object.entries(cfg.jobs).map(async ([name, j]) => {
            const [last] = await catalog.recentRuns(name, 1);
            return { name, source: j.source, sourceKind: cfg.sources[j.source]?.kind ?? null, schedule: j.schedule ?? null, scheduleInfo: j.schedule ? describeSchedule(j.schedule) : null, tier: j.tier, copyTo: j.copyTo, running: !!tasks.busy('job-run', 'job', name), lastRun: last ? runJson(last) : null };
          }),
        ),
    },
    {
      method: 'GET',
      path: '/api/v1/jobs/{name}/runs',
      auth: 'viewer',
      tag: 'jobs',
      summary: 'Run history of a job (newest first), without logs; agent: only the runs of that fleet agent',
      query: z.object({ limit, kind: z.enum(RUN_KINDS).optional(), agent: z.string().max(63).optional() }).strict(),
      handler: async (ctx: RouteContext<{ limit?: number; kind?: RunKind; agent?: string }>) => {
        knownJob(cfg, ctx.params.name!);
        return (
          await catalog.runs({ job: ctx.params.name!, limit: ctx.query.limit ?? 50, ...(ctx.query.kind ? { kind: ctx.query.kind } : {}), ...(ctx.query.agent ? { agentId: ctx.query.agent } : {}) })
        ).map((r) => runJson(r));
      },
    },
    {
      method: 'POST',
      path: '/api/v1/jobs/{name}/run',
      auth: 'operator',
      tag: 'jobs',
      status: 202,
      summary: 'Run a job now (backup, copies, retention) in the background; returns the task',
      handler: async (ctx) => {
        const name = ctx.params.name!;
        knownJob(cfg, name);
        const busy = tasks.busy('job-run', 'job', name);
        if (busy) throw new HttpError(409, `job ${name} is already running (task ${busy.id})`, { task: busy.id });
        const t = await tasks.start('job-run', `run job ${name}`, ctx.actor, { job: name }, async ({ log, signal }) => {
          const hooks = catalogHooks(cfg, catalog);
          const runId = (await hooks.onRunStart(name, 1)) as number;
          log(`run ${runId}: job ${name} started by ${ctx.actor}`);
          const r = await runJob(plan, name, { signal, log, retryLockMs: 60_000, firstRun: firstRunFromCatalog(catalog, name) });
          await hooks.onRunEnd(r, runId, 1, true);
          const result = { runId, status: r.status, snapshotId: r.snapshotId ?? null, error: r.error ?? null, warnings: r.warnings.slice(0, 50) };
          if (r.status === 'failed') return new TaskFailure(`job ${name} failed: ${r.error}`, result);
          return result;
        });
        return reply({ status: 202, json: taskJson(t) });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/runs/{id}',
      auth: 'viewer',
      tag: 'jobs',
      summary: 'One run with its log tail',
      handler: async (ctx) => {
        const r = await catalog.getRun(intParam(ctx.params.id, 'id'));
        if (!r) throw new HttpError(404, `no run ${ctx.params.id}`);
        return runJson(r, true);
      },
    },
  ];
}
