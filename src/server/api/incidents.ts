import { z } from 'zod';
import { IncidentStore, renderIncidentMarkdown } from '../../ops/incidents.js';
import { computeAvailability } from '../../ops/availability.js';
import { reply, type Route, type RouteContext } from '../http.js';
import { type ApiDeps, bool, impact, incidentOr404, incidentStatus, intParam, limit, serviceChecks, serviceList } from './common.js';

/** API routes tagged "incidents": incidents, updates and postmortems. */
export function incidentRoutes(d: ApiDeps): Route[] {
  const { cfg, catalog } = d;
  // with the config: creating, updating and resolving notify incidents.channels and the targeted audiences, as the CLI does
  const incidents = () => new IncidentStore(catalog, { config: cfg });
  const audiences = z.array(z.string().min(1).max(64)).max(32).optional().describe('incidents.audiences to tell as well, each through its own channels with its own template');
  const { checkServices } = serviceChecks(cfg);
  return [
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
      body: z.object({ title: z.string().min(1).max(200), impact, services: serviceList.default([]), message: z.string().max(10_000).optional(), audiences }).strict(),
      handler: async (ctx) => {
        const b = ctx.body as { title: string; impact: z.infer<typeof impact>; services: string[]; message?: string; audiences?: string[] };
        checkServices(b.services);
        return reply({ status: 201, json: await incidents().create({ ...b, author: ctx.actor, visibility: 'public' }) });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/availability',
      auth: 'viewer',
      tag: 'incidents',
      summary: 'Measured availability per service over 30/90 days with daily bars; scope=internal (default) counts private incidents too, scope=public only published ones (as the status page)',
      query: z.object({ scope: z.enum(['internal', 'public']).optional() }).strict(),
      handler: async (ctx: RouteContext<{ scope?: 'internal' | 'public' }>) => computeAvailability(cfg, catalog, ctx.query.scope === 'public' ? { visibility: 'public' } : {}),
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
      body: z.object({ status: incidentStatus.exclude(['resolved']).optional(), message: z.string().min(1).max(10_000), public: z.boolean().default(true), audiences }).strict(),
      handler: async (ctx) => {
        const n = intParam(ctx.params.id, 'id');
        await incidentOr404(incidents().get(n), n);
        const b = ctx.body as { status?: 'investigating' | 'identified' | 'monitoring'; message: string; public: boolean; audiences?: string[] };
        return incidents().addUpdate(n, { ...b, author: ctx.actor });
      },
    },
    {
      method: 'POST',
      path: '/api/v1/incidents/{id}/resolve',
      auth: 'operator',
      tag: 'incidents',
      summary: 'Resolve an incident',
      body: z.object({ message: z.string().min(1).max(10_000), audiences }).strict(),
      handler: async (ctx) => {
        const n = intParam(ctx.params.id, 'id');
        await incidentOr404(incidents().get(n), n);
        const b = ctx.body as { message: string; audiences?: string[] };
        return incidents().resolve(n, { message: b.message, author: ctx.actor, ...(b.audiences ? { audiences: b.audiences } : {}) });
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
  ];
}
