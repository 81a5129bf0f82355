import { z } from 'zod';
import { HttpError, type Route, type RouteContext } from '../http.js';
import { type ApiDeps, intParam, limit, taskJson } from './common.js';

/** API routes tagged "tasks": background tasks started through the API. */
export function taskRoutes(d: ApiDeps): Route[] {
  const { tasks } = d;
  return [
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
  ];
}
