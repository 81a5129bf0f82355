import type { Route } from '../http.js';
import { type ApiDeps } from './common.js';

/** API routes tagged "meta": the OpenAPI document. */
export function metaRoutes(d: ApiDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/openapi.json',
      auth: 'public',
      tag: 'meta',
      summary: 'This OpenAPI 3.1 document',
      handler: async () => d.openapi(),
    },
  ];
}
