import { IncidentStore } from '../../ops/incidents.js';
import { computeAvailability } from '../../ops/availability.js';
import { buildOverview } from '../overview.js';
import type { Route } from '../http.js';
import { type ApiDeps } from './common.js';

/** API routes tagged "overview": per-job overview and current alerts. */
export function overviewRoutes(d: ApiDeps): Route[] {
  const { cfg, catalog, maintenance } = d;
  const incidents = async () =>
    (await new IncidentStore(catalog).list({ open: true, limit: 50 })).map((i) => ({ id: i.id, title: i.title, status: i.status, impact: i.impact, visibility: i.visibility, services: i.services, startedAt: i.startedAt.toISOString() }));
  const windows = async () =>
    (await maintenance.list({ current: true })).filter((w) => w.state === 'scheduled' || w.state === 'in-progress').map((w) => ({ id: w.id, title: w.title, state: w.state, services: w.services, startsAt: w.startsAt.toISOString(), endsAt: w.endsAt.toISOString() }));
  return [
    {
      method: 'GET',
      path: '/api/v1/overview',
      auth: 'viewer',
      tag: 'overview',
      summary: 'Per job: last backup, age vs RPO, last drill and measured RTO vs objective, 3-2-1, alerts, traffic light; size/duration history; per service: 30/90-day availability from all incidents (internal)',
      handler: async () => buildOverview(cfg, catalog, { incidents, maintenance: windows, availability: () => computeAvailability(cfg, catalog) }),
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
  ];
}
