import { z } from 'zod';
import { confirmManualStep, getRunbookRun, listRunbookRuns, planRunbook, runRunbook } from '../../runbook/engine.js';
import { listRunbooks } from '../../runbook/load.js';
import { TaskFailure } from '../tasks.js';
import { HttpError, reply, type Route, type RouteContext } from '../http.js';
import { type ApiDeps, intParam, limit, taskJson } from './common.js';

/** API routes tagged "runbooks": runbooks, their runs and manual-step confirmation. */
export function runbookRoutes(d: ApiDeps): Route[] {
  const { cfg, catalog, tasks } = d;
  return [
    {
      method: 'GET',
      path: '/api/v1/runbooks',
      auth: 'viewer',
      tag: 'runbooks',
      summary: 'Runbooks defined in the config',
      handler: async () => listRunbooks(cfg),
    },
    {
      method: 'GET',
      path: '/api/v1/runbooks/{name}/plan',
      auth: 'viewer',
      tag: 'runbooks',
      summary: 'The steps a runbook would run (dry run)',
      handler: async (ctx) => planRunbook(cfg, ctx.params.name!, { catalog }),
    },
    {
      method: 'POST',
      path: '/api/v1/runbooks/{name}/runs',
      auth: 'operator',
      tag: 'runbooks',
      status: 202,
      summary: 'Start a runbook (background task); returns the task and the runbook run id',
      handler: async (ctx) => {
        const name = ctx.params.name!;
        if (!listRunbooks(cfg).some((r) => r.name === name)) throw new HttpError(404, `unknown runbook "${name}"`);
        let started: (id: number | null) => void = () => {};
        const runIdP = new Promise<number | null>((r) => (started = r));
        const t = await tasks.start('runbook', `runbook ${name}`, ctx.actor, { runbook: name }, async ({ log, signal }) => {
          try {
            const run = await runRunbook(cfg, catalog, name, { actor: ctx.actor, signal, log, onStarted: (id) => started(id) });
            started(run.id);
            const result = { runId: run.id, status: run.status };
            return run.status === 'success' ? result : new TaskFailure(`runbook ${name} ended ${run.status}`, result);
          } finally {
            started(null);
          }
        });
        const runId = await runIdP;
        const now = await tasks.get(t.id);
        return reply({ status: 202, json: { task: taskJson(now ?? t), runId } });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/runbook-runs',
      auth: 'viewer',
      tag: 'runbooks',
      summary: 'Runbook runs, newest first',
      query: z.object({ runbook: z.string().optional(), limit }).strict(),
      handler: async (ctx: RouteContext<{ runbook?: string; limit?: number }>) =>
        listRunbookRuns(catalog, { ...(ctx.query.runbook ? { runbook: ctx.query.runbook } : {}), limit: ctx.query.limit ?? 50 }),
    },
    {
      method: 'GET',
      path: '/api/v1/runbook-runs/{id}',
      auth: 'viewer',
      tag: 'runbooks',
      summary: 'One runbook run with its steps (poll this to follow a run)',
      handler: async (ctx) => {
        const r = await getRunbookRun(catalog, intParam(ctx.params.id, 'id'));
        if (!r) throw new HttpError(404, `no runbook run ${ctx.params.id}`);
        return r;
      },
    },
    {
      method: 'POST',
      path: '/api/v1/runbook-runs/{id}/steps/{index}/confirm',
      auth: 'operator',
      tag: 'runbooks',
      summary: 'Confirm (or reject with ok=false) a manual step that is waiting; {index} is the step\'s `index` (1-based)',
      body: z.object({ ok: z.boolean().default(true), note: z.string().max(4000).optional() }).strict(),
      handler: async (ctx) => {
        const runId = intParam(ctx.params.id, 'id');
        const index = Number(ctx.params.index);
        if (!Number.isInteger(index) || index < 1) throw new HttpError(400, 'index must be a step number (1-based, the "index" of the run\'s steps)');
        const run = await getRunbookRun(catalog, runId);
        if (!run) throw new HttpError(404, `no runbook run ${runId}`);
        const step = run.steps.find((s) => s.index === index);
        if (!step) throw new HttpError(404, `runbook run ${runId} has no step ${index}`);
        if (step.status !== 'waiting') throw new HttpError(409, `step ${index} (${step.name}) is ${step.status}, not waiting for confirmation`);
        const b = ctx.body as { ok: boolean; note?: string };
        await confirmManualStep(catalog, runId, index, ctx.actor, { ok: b.ok, ...(b.note ? { note: b.note } : {}) });
        return (await getRunbookRun(catalog, runId))!;
      },
    },
  ];
}
