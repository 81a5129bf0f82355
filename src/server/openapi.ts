import { z } from 'zod';
import { PROGRAM } from '../repo/repository.js';
import type { Route } from './http.js';

/**
 * The OpenAPI 3.1 document of the JSON API, generated from the route table
 * (paths, parameters, request bodies from the zod schemas, roles). Served at
 * /api/v1/openapi.json; `lifeboat serve --openapi` prints it (docs/openapi.json
 * is that output, and a test checks they are equal).
 */

function schemaOf(t: z.ZodType): Record<string, unknown> {
  const s = z.toJSONSchema(t, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
}

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' } },
  required: ['error'],
};

export function openApiDocument(routes: Route[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params: Array<Record<string, unknown>> = [];
    for (const m of r.path.matchAll(/\{([A-Za-z]+)\}/g)) params.push({ name: m[1], in: 'path', required: true, schema: { type: 'string' } });
    if (r.query) {
      const js = schemaOf(r.query) as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
      for (const [name, s] of Object.entries(js.properties ?? {})) {
        const { description, ...schema } = s;
        params.push({ name, in: 'query', required: (js.required ?? []).includes(name), schema, ...(description ? { description } : {}) });
      }
    }
    const status = String(r.status ?? 200);
    const responses: Record<string, unknown> = {
      [status]: {
        description: r.response?.description ?? 'OK',
        content: { [r.response?.contentType ?? 'application/json']: { schema: r.response?.schema ? schemaOf(r.response.schema) : r.response?.contentType ? { type: 'string' } : { type: 'object' } } },
      },
      '400': { $ref: '#/components/responses/BadRequest' },
    };
    if (r.auth !== 'public') {
      responses['401'] = { $ref: '#/components/responses/Unauthorized' };
      responses['403'] = { $ref: '#/components/responses/Forbidden' };
    }
    if (r.path.includes('{')) responses['404'] = { $ref: '#/components/responses/NotFound' };
    const op: Record<string, unknown> = {
      operationId: operationId(r),
      tags: [r.tag],
      summary: r.summary,
      description: [r.description, r.auth === 'public' ? 'Public: no authentication.' : `Requires role **${r.auth}** or higher.`].filter(Boolean).join('\n\n'),
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(r.body) } } } } : {}),
      responses,
      security: r.auth === 'public' ? [] : [{ bearerAuth: [] }, { sessionCookie: [], csrfHeader: [] }],
      'x-lifeboat-role': r.auth,
    };
    (paths[r.path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Lifeboat API',
      version: PROGRAM.split(' ')[1],
      description:
        'JSON API of `lifeboat serve`. Authenticate with `Authorization: Bearer <token>` (tokens: `lifeboat token create`) or with the session cookie of the dashboard; cookie sessions must send the session\'s CSRF token in `X-CSRF-Token` on every POST/PUT/DELETE. Cross-origin state-changing requests are rejected. Long operations (job runs, restores, drills, runbooks) return a task to poll at /api/v1/tasks/{id}.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/' }],
    tags: [...new Set(routes.map((r) => r.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas: { Error: errorSchema },
      responses: {
        BadRequest: { description: 'invalid request (the message names the field and why)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        Unauthorized: { description: 'not authenticated', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        Forbidden: { description: 'role too low, or CSRF token / Origin check failed', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
        NotFound: { description: 'not found', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'API token from `lifeboat token create`' },
        sessionCookie: { type: 'apiKey', in: 'cookie', name: 'lb_session', description: 'dashboard session (`__Host-lb_session` over HTTPS)' },
        csrfHeader: { type: 'apiKey', in: 'header', name: 'X-CSRF-Token', description: 'CSRF token of the session (GET /api/v1/session); required on state-changing requests with a cookie session' },
      },
    },
  };
}

function operationId(r: Route): string {
  const words = r.path
    .replace(/^\/api\/v1\/?/, '')
    .replace(/^\//, '')
    .split('/')
    .map((s) => (s.startsWith('{') ? 'by-' + s.slice(1, -1) : s))
    .join('-');
  return (r.method.toLowerCase() + '-' + (words || 'root')).replace(/[^A-Za-z0-9]+(.)/g, (_, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '');
}
