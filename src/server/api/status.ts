import { z } from 'zod';
import { LifeboatError, errorMessage } from '../../errors.js';
import { buildStatus } from '../status.js';
import { HttpError, reply, type Route, type RouteContext } from '../http.js';
import { type ApiDeps, bool, intParam, serviceChecks, serviceList, when } from './common.js';

/** API routes tagged "status": public status and maintenance windows. */
export function statusRoutes(d: ApiDeps): Route[] {
  const { cfg, catalog } = d;
  const { knownServices, checkServices } = serviceChecks(cfg);
  return [
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
  ];
}
