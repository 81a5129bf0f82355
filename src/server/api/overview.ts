import { buildOverview } from '../overview.js';
import type { Route } from '../http.js';
import { type ApiDeps } from './common.js';

/** API routes tagged "overview": per-job overview and current alerts. */
export function overviewRoutes(d: ApiDeps): Route[] {
  const { cfg, catalog } = d;
  return [
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
  ];
}
