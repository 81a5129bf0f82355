import { z } from 'zod';
import type { Catalog } from '../../ops/catalog/types.js';
import { IncidentStore, type Incident } from '../../ops/incidents.js';
import { HttpError, type Route, type RouteContext } from '../http.js';
import { publicIncident, renderIncidentPreviewHtml, type PublicIncident } from '../status.js';

/**
 * Publishing incidents on the status page: an explicit operator action with a
 * preview of exactly what the public page will show. Incidents are private
 * by default when Lifeboat opens them (runbooks); see src/ops/incidents.ts.
 *
 * Routes: POST /api/v1/incidents/{id}/publish-preview (nothing changes),
 * /publish and /unpublish.
 */

export interface PublishRequest {
  message?: string;
  title?: string;
}

export interface PublishPreview {
  /** The incident's visibility now. */
  visibility: Incident['visibility'];
  /** What the public page shows of this incident once published with this request. */
  incident: PublicIncident;
  /** The incident's card on the public page, as a self-contained HTML document. */
  html: string;
}

/** What the public page would show of `inc` after publish(inc, req) at `now`. */
export function previewPublish(inc: Incident, req: PublishRequest, now: Date = new Date()): PublishPreview {
  const sim: Incident = {
    ...inc,
    visibility: 'public',
    publicTitle: req.title?.trim() ? req.title.trim() : inc.publicTitle,
    updates: [...inc.updates, ...(req.message?.trim() ? [{ id: 0, at: now, status: null, message: req.message.trim(), author: null, public: true, system: false }] : [])],
  };
  const pub = publicIncident(sim);
  return { visibility: inc.visibility, incident: pub, html: renderIncidentPreviewHtml(pub) };
}

const publishBody = z
  .object({
    message: z.string().trim().min(1).max(10_000).optional().describe('posted as a public update (the text the status page shows)'),
    title: z.string().trim().min(1).max(200).optional().describe('public headline (default: the incident title)'),
  })
  .strict();

function idParam(v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new HttpError(400, 'id must be a positive integer');
  return n;
}

export function publishRoutes(d: { catalog: Catalog }): Route[] {
  const store = () => new IncidentStore(d.catalog);
  const must = async (id: number) => {
    const i = await store().get(id);
    if (!i) throw new HttpError(404, `no incident ${id}`);
    return i;
  };
  return [
    {
      method: 'POST',
      path: '/api/v1/incidents/{id}/publish-preview',
      auth: 'operator',
      tag: 'incidents',
      summary: 'Preview exactly what the public status page would show of this incident if published with this message and title (changes nothing)',
      body: publishBody,
      handler: async (ctx: RouteContext<unknown, PublishRequest>) => previewPublish(await must(idParam(ctx.params.id)), ctx.body),
    },
    {
      method: 'POST',
      path: '/api/v1/incidents/{id}/publish',
      auth: 'operator',
      tag: 'incidents',
      summary: 'Publish the incident on the status page (optionally posting a public message and setting the public headline)',
      description: 'Only public incidents appear on the status page, and of them only updates an operator marked public; timeline events and system updates never do.',
      body: publishBody,
      handler: async (ctx: RouteContext<unknown, PublishRequest>) => {
        const n = idParam(ctx.params.id);
        await must(n);
        return store().publish(n, { ...ctx.body, author: ctx.actor });
      },
    },
    {
      method: 'POST',
      path: '/api/v1/incidents/{id}/unpublish',
      auth: 'operator',
      tag: 'incidents',
      summary: 'Take the incident off the status page (it becomes private again)',
      handler: async (ctx) => {
        const n = idParam(ctx.params.id);
        await must(n);
        return store().unpublish(n, { author: ctx.actor });
      },
    },
  ];
}
