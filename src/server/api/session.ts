import { z } from 'zod';
import type { Route } from '../http.js';
import { type ApiDeps } from './common.js';

/** API routes tagged "session": log in, log out, who am I. */
export function sessionRoutes(d: ApiDeps): Route[] {
  return [
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
  ];
}
