import type { Route } from './http.js';
import { type ApiDeps } from './api/common.js';
import { drillRoutes } from './api/drills.js';
import { incidentRoutes } from './api/incidents.js';
import { jobRoutes } from './api/jobs.js';
import { metaRoutes } from './api/meta.js';
import { overviewRoutes } from './api/overview.js';
import { runbookRoutes } from './api/runbooks.js';
import { sessionRoutes } from './api/session.js';
import { snapshotRoutes } from './api/snapshots.js';
import { statusRoutes } from './api/status.js';
import { taskRoutes } from './api/tasks.js';
import { publishRoutes } from './api/publish.js';
import { fleetRoutes } from './api/fleet.js';

/**
 * The JSON API route table (/api/v1). Each handler is a thin call into the
 * library; the table is also the source of the OpenAPI document. The routes
 * of each OpenAPI tag live in src/server/api/<tag>.ts; the order here is the
 * order of the document.
 */


export function apiRoutes(d: ApiDeps): Route[] {
  const routes: Route[] = [
    ...sessionRoutes(d),
    ...metaRoutes(d),
    ...overviewRoutes(d),
    ...jobRoutes(d),
    ...fleetRoutes(d),
    ...snapshotRoutes(d),
    ...taskRoutes(d),
    ...drillRoutes(d),
    ...runbookRoutes(d),
    ...incidentRoutes(d),
    ...statusRoutes(d),
    ...publishRoutes(d),
  ];
  return routes;
}
