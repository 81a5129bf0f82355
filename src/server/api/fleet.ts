import { z } from 'zod';
import { FleetStore, REQUEST_KINDS, type RequestKind } from '../../ops/fleet/store.js';
import { fleetView } from '../../ops/fleet/view.js';
import { parseDuration } from '../../util/duration.js';
import { HttpError, reply, type Route, type RouteContext } from '../http.js';
import { type ApiDeps, intParam } from './common.js';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/);

/** API routes tagged "fleet": the agents sharing the catalog, their jobs, run requests to one agent. */
export function fleetRoutes(d: ApiDeps): Route[] {
  const { cfg, catalog } = d;
  const store = new FleetStore(catalog, { timeoutMs: parseDuration(cfg.daemon.fleet.catalogTimeout), missedAfter: cfg.daemon.fleet.missedAfter });
  return [
    {
      method: 'GET',
      path: '/api/v1/fleet',
      auth: 'viewer',
      tag: 'fleet',
      summary: 'Every agent (live / missed / stopped) with its version, last heartbeat and jobs (last run by that agent), filtered by host and service; recent run requests',
      query: z.object({ host: name.optional(), service: z.string().max(100).optional() }).strict(),
      handler: async (ctx: RouteContext<{ host?: string; service?: string }>) =>
        fleetView(store, catalog, { ...(ctx.query.host ? { host: ctx.query.host } : {}), ...(ctx.query.service ? { service: ctx.query.service } : {}) }),
    },
    {
      method: 'POST',
      path: '/api/v1/fleet/agents/{id}/requests',
      auth: 'operator',
      tag: 'fleet',
      status: 202,
      summary: 'Ask one agent to run one of its jobs (kind job) or a restore drill of it (kind drill); the agent picks the request up from the catalog',
      body: z.object({ kind: z.enum(REQUEST_KINDS), name }).strict(),
      handler: async (ctx) => {
        const b = ctx.body as { kind: RequestKind; name: string };
        return reply({ status: 202, json: await store.request(ctx.params.id!, b.kind, b.name, ctx.actor) });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/fleet/requests/{id}',
      auth: 'viewer',
      tag: 'fleet',
      summary: 'One run request and its state (pending, running, success, partial, failed) with the result the agent reported',
      handler: async (ctx) => {
        const r = await store.getRequest(intParam(ctx.params.id, 'id'));
        if (!r) throw new HttpError(404, `no run request ${ctx.params.id}`);
        return r;
      },
    },
  ];
}
