import { z } from 'zod';
import type { LifeboatConfig } from '../config/load.js';
import type { Catalog, RunKind, RunRecord } from '../ops/catalog.js';
import { RUN_KINDS } from '../ops/catalog.js';
import { IncidentStore, renderIncidentMarkdown } from '../ops/incidents.js';
import { runJob } from '../ops/jobs.js';
import { catalogHooks } from '../ops/service.js';
import { confirmManualStep, getRunbookRun, listRunbookRuns, planRunbook, runRunbook } from '../runbook/engine.js';
import { listRunbooks } from '../runbook/load.js';
import { runDrill } from '../verify/drill.js';
import { getDrill, listDrills, recordDrill } from '../verify/drill-store.js';
import { LifeboatError, errorMessage } from '../errors.js';
import type { AuthStore } from './auth.js';
import type { ServerConfig } from './config.js';
import { HttpError, reply, type Route, type RouteContext } from './http.js';
import { parseZonedTime, type MaintenanceStore } from './maintenance.js';
import { buildOverview } from './overview.js';
import { browseSnapshot, checkDatabaseRestore, checkFileRestore, listSnapshots, repositoryList, restoreDatabase, restoreFiles } from './snapshots.js';
import { buildStatus } from './status.js';
import { publishRoutes } from './publish.js';
import { TaskFailure, type Task, type TaskRegistry } from './tasks.js';

/**
 * The JSON API route table (/api/v1). Each handler is a thin call into the
 * library; the table is also the source of the OpenAPI document.
 */

export interface ApiDeps {
  cfg: LifeboatConfig;
  catalog: Catalog;
  auth: AuthStore;
  maintenance: MaintenanceStore;
  tasks: TaskRegistry;
  server: ServerConfig;
  /** Session login (cookie) — implemented by the server (needs the response). */
  login: (ctx: RouteContext, user: string, password: string) => Promise<{ user: string; role: string; csrfToken: string; expiresAt: string }>;
  logout: (ctx: RouteContext) => Promise<void>;
  openapi: () => Record<string, unknown>;
}

const limit = z.coerce.number().int().min(1).max(1000).optional();
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const impact = z.enum(['none', 'minor', 'major', 'critical']);
const incidentStatus = z.enum(['investigating', 'identified', 'monitoring', 'resolved']);
const serviceList = z.array(z.string().regex(/^[A-Za-z0-9_.-]+$/)).max(100);

function intParam(v: string | undefined, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new HttpError(400, `${what} must be a positive integer`);
  return n;
}

function runJson(r: RunRecord, withLog = false) {
  const { logTail, toolVersions, ...rest } = r;
  return { ...rest, ...(withLog ? { logTail, toolVersions } : {}) };
}

function taskJson(t: Task) {
  return { ...t, log: t.log.slice(-100) };
}

/** Parse an ISO date/time with an explicit zone ('2025-01-31T10:00Z', '2025-01-31T11:00+01:00') or throw 400. */
function when(s: string, what: string): Date {
  try {
    return parseZonedTime(s, what);
  } catch (err) {
    throw new HttpError(400, errorMessage(err));
  }
}

function knownJob(cfg: LifeboatConfig, name: string): void {
  if (!cfg.jobs[name]) throw new HttpError(404, `unknown job "${name}"`);
}

async function incidentOr404<T>(p: Promise<T | undefined>, id: number): Promise<T> {
  const v = await p;
  if (!v) throw new HttpError(404, `no incident ${id}`);
  return v;
}

export function apiRoutes(d: ApiDeps): Route[] {
  const { cfg, catalog, tasks } = d;
  const incidents = () => new IncidentStore(catalog);
  const knownServices = Object.keys(cfg.services);
  const checkServices = (list: string[]) => {
    const bad = list.filter((s) => !cfg.services[s]);
    if (bad.length) throw new HttpError(400, `unknown service(s) ${bad.join(', ')} (defined: ${knownServices.join(', ') || 'none'})`);
  };

  const routes: Route[] = [
    // --- session
    {
      method: 'POST',
      path: '/api/v1/login',
      auth: 'public',
      tag: 'session',
      summary: 'Log in with user name and password (sets the session cookie; returns the CSRF token)',
      description: 'Failed logins are throttled per client address and user name (429 with Retry-After).',
      body: z.object({ user: z.string().min(1).max(64), password: z.string().min(1).max(1024) }).strict(),
      handler: async (ctx) => d.login(ctx, ctx.body.user, ctx.body.password),
    },
    {
      method: 'POST',
      path: '/api/v1/logout',
      auth: 'viewer',
      tag: 'session',
      summary: 'End the current session',
      handler: async (ctx) => {
        await d.logout(ctx);
        return { ok: true };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/session',
      auth: 'viewer',
      tag: 'session',
      summary: 'Who am I: user, role, and (cookie sessions) the CSRF token',
      handler: async (ctx) => ({ user: ctx.principal!.name, role: ctx.principal!.role, kind: ctx.principal!.kind, csrfToken: ctx.principal!.csrf ?? null }),
    },
    {
      method: 'GET',
      path: '/api/v1/openapi.json',
      auth: 'public',
      tag: 'meta',
      summary: 'This OpenAPI 3.1 document',
      handler: async () => d.openapi(),
    },

    // --- overview & jobs
    {
      method: 'GET',
      path: '/api/v1/overview',
      auth: 'viewer',
      tag: 'overview',
      summary: 'Per job: last backup, age vs RPO, last drill and measured RTO vs objective, 3-2-1, alerts, traffic light; size/duration history',
      handler: async () => buildOverview(cfg, catalog),
    },
    {
      method: 'GET',
      path: '/api/v1/alerts',
      auth: 'viewer',
      tag: 'overview',
      summary: 'Current non-ok findings of the monitor and alerts firing in the catalog',
      handler: async () => {
        const o = await buildOverview(cfg, catalog, { historyPoints: 1 });
        return { findings: o.alerts, firing: await catalog.listAlerts({ state: 'firing' }) };
      },
    },
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
            return { name, source: j.source, sourceKind: cfg.sources[j.source]?.kind ?? null, schedule: j.schedule ?? null, tier: j.tier, copyTo: j.copyTo, running: !!tasks.busy('job-run', 'job', name), lastRun: last ? runJson(last) : null };
          }),
        ),
    },
    {
      method: 'GET',
      path: '/api/v1/jobs/{name}/runs',
      auth: 'viewer',
      tag: 'jobs',
      summary: 'Run history of a job (newest first), without logs',
      query: z.object({ limit, kind: z.enum(RUN_KINDS).optional() }).strict(),
      handler: async (ctx: RouteContext<{ limit?: number; kind?: RunKind }>) => {
        knownJob(cfg, ctx.params.name!);
        return (await catalog.runs({ job: ctx.params.name!, limit: ctx.query.limit ?? 50, ...(ctx.query.kind ? { kind: ctx.query.kind } : {}) })).map((r) => runJson(r));
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
          const r = await runJob(cfg, name, { signal, log, retryLockMs: 60_000 });
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

    // --- repositories & snapshots
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

    // --- tasks
    {
      method: 'GET',
      path: '/api/v1/tasks',
      auth: 'viewer',
      tag: 'tasks',
      summary: 'Background tasks started through the API (newest first)',
      query: z.object({ limit }).strict(),
      handler: async (ctx: RouteContext<{ limit?: number }>) => (await tasks.list(ctx.query.limit ?? 50)).map(taskJson),
    },
    {
      method: 'GET',
      path: '/api/v1/tasks/{id}',
      auth: 'viewer',
      tag: 'tasks',
      summary: 'One task: status, log tail, result',
      handler: async (ctx) => {
        const t = await tasks.get(intParam(ctx.params.id, 'id'));
        if (!t) throw new HttpError(404, `no task ${ctx.params.id}`);
        return taskJson(t);
      },
    },

    // --- drills
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
        const t = await tasks.start('drill', `drill ${job}`, ctx.actor, { job, ...(snapshot ? { snapshot } : {}) }, async ({ log, signal }) => {
          const r = await runDrill(cfg, job, { catalog, signal, log, ...(snapshot ? { snapshot } : {}) });
          if (r.id === undefined) await recordDrill(catalog, r);
          const result = { drillId: r.id ?? null, status: r.status, restoreMs: r.restoreMs, rtoMs: r.rtoMs, rtoMet: r.rtoMet, error: r.error ?? null };
          return r.status === 'success' ? result : new TaskFailure(`drill of ${job} failed: ${r.error ?? 'checks failed'}`, result);
        });
        return reply({ status: 202, json: taskJson(t) });
      },
    },

    // --- runbooks
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

    // --- incidents
    {
      method: 'GET',
      path: '/api/v1/incidents',
      auth: 'viewer',
      tag: 'incidents',
      summary: 'Incidents, newest first',
      query: z.object({ open: bool.optional(), limit }).strict(),
      handler: async (ctx: RouteContext<{ open?: boolean; limit?: number }>) => incidents().list({ ...(ctx.query.open !== undefined ? { open: ctx.query.open } : {}), limit: ctx.query.limit ?? 100 }),
    },
    {
      method: 'POST',
      path: '/api/v1/incidents',
      auth: 'operator',
      tag: 'incidents',
      status: 201,
      summary: 'Open an incident',
      body: z.object({ title: z.string().min(1).max(200), impact, services: serviceList.default([]), message: z.string().max(10_000).optional() }).strict(),
      handler: async (ctx) => {
        const b = ctx.body as { title: string; impact: z.infer<typeof impact>; services: string[]; message?: string };
        checkServices(b.services);
        return reply({ status: 201, json: await incidents().create({ ...b, author: ctx.actor, visibility: 'public' }) });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/incidents/{id}',
      auth: 'viewer',
      tag: 'incidents',
      summary: 'One incident with updates and timeline',
      handler: async (ctx) => {
        const n = intParam(ctx.params.id, 'id');
        return incidentOr404(incidents().get(n), n);
      },
    },
    {
      method: 'POST',
      path: '/api/v1/incidents/{id}/updates',
      auth: 'operator',
      tag: 'incidents',
      summary: 'Post an update (optionally changing the status; public updates appear on the status page)',
      body: z.object({ status: incidentStatus.exclude(['resolved']).optional(), message: z.string().min(1).max(10_000), public: z.boolean().default(true) }).strict(),
      handler: async (ctx) => {
        const n = intParam(ctx.params.id, 'id');
        await incidentOr404(incidents().get(n), n);
        const b = ctx.body as { status?: 'investigating' | 'identified' | 'monitoring'; message: string; public: boolean };
        return incidents().addUpdate(n, { ...b, author: ctx.actor });
      },
    },
    {
      method: 'POST',
      path: '/api/v1/incidents/{id}/resolve',
      auth: 'operator',
      tag: 'incidents',
      summary: 'Resolve an incident',
      body: z.object({ message: z.string().min(1).max(10_000) }).strict(),
      handler: async (ctx) => {
        const n = intParam(ctx.params.id, 'id');
        await incidentOr404(incidents().get(n), n);
        return incidents().resolve(n, { message: (ctx.body as { message: string }).message, author: ctx.actor });
      },
    },
    {
      method: 'PUT',
      path: '/api/v1/incidents/{id}/postmortem',
      auth: 'operator',
      tag: 'incidents',
      summary: 'Set the postmortem fields (summary, root cause, lessons learned, action items)',
      body: z
        .object({ summary: z.string().max(20_000).optional(), rootCause: z.string().max(20_000).optional(), lessonsLearned: z.string().max(20_000).optional(), actionItems: z.array(z.string().max(1000)).max(100).optional() })
        .strict(),
      handler: async (ctx) => {
        const n = intParam(ctx.params.id, 'id');
        await incidentOr404(incidents().get(n), n);
        return incidents().setPostmortem(n, ctx.body as Record<string, never>);
      },
    },
    {
      method: 'GET',
      path: '/api/v1/incidents/{id}/postmortem',
      auth: 'viewer',
      tag: 'incidents',
      summary: 'The incident report / postmortem as Markdown',
      response: { description: 'Markdown document', contentType: 'text/markdown' },
      handler: async (ctx) => {
        const n = intParam(ctx.params.id, 'id');
        const i = await incidentOr404(incidents().get(n), n);
        return reply({ text: renderIncidentMarkdown(i), contentType: 'text/markdown; charset=utf-8' });
      },
    },

    // --- status page
    {
      method: 'GET',
      path: '/api/v1/status',
      auth: 'public',
      tag: 'status',
      summary: 'Public status: overall state, components, open incidents, maintenance, history (same as /status.json)',
      handler: async () => {
        const { warnings: _w, ...m } = await buildStatus(cfg, catalog);
        void _w;
        return m;
      },
    },
    {
      method: 'GET',
      path: '/api/v1/maintenance-windows',
      auth: 'viewer',
      tag: 'status',
      summary: 'Maintenance windows (status page), newest first',
      query: z.object({ current: bool.optional() }).strict(),
      handler: async (ctx: RouteContext<{ current?: boolean }>) => d.maintenance.list(ctx.query.current ? { current: true } : {}),
    },
    {
      method: 'POST',
      path: '/api/v1/maintenance-windows',
      auth: 'operator',
      tag: 'status',
      status: 201,
      summary: 'Announce a maintenance window on the status page',
      body: z
        .object({ title: z.string().min(1).max(200), description: z.string().max(10_000).optional(), services: serviceList.default([]), start: z.string().min(1).describe('ISO 8601 with a zone (Z or +01:00); zone-less times are rejected'), end: z.string().min(1).describe('ISO 8601 with a zone') })
        .strict(),
      handler: async (ctx) => {
        const b = ctx.body as { title: string; description?: string; services: string[]; start: string; end: string };
        checkServices(b.services);
        try {
          const w = await d.maintenance.add({ title: b.title, ...(b.description ? { description: b.description } : {}), services: b.services, startsAt: when(b.start, 'start'), endsAt: when(b.end, 'end'), createdBy: ctx.actor }, knownServices);
          return reply({ status: 201, json: w });
        } catch (err) {
          if (err instanceof LifeboatError && !(err instanceof HttpError)) throw new HttpError(400, err.message);
          throw err;
        }
      },
    },
    {
      method: 'POST',
      path: '/api/v1/maintenance-windows/{id}/cancel',
      auth: 'operator',
      tag: 'status',
      summary: 'Cancel a maintenance window',
      handler: async (ctx) => {
        const n = intParam(ctx.params.id, 'id');
        if (!(await d.maintenance.get(n))) throw new HttpError(404, `no maintenance window ${n}`);
        try {
          return await d.maintenance.cancel(n);
        } catch (err) {
          throw new HttpError(409, errorMessage(err));
        }
      },
    },
    ...publishRoutes(d),
  ];
  return routes;
}

