import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { Principal, Role } from './auth.js';

/**
 * A small, explicit router over node:http: every API route is one entry of a
 * table (method, path template, required role, zod schemas for query and
 * body, summary). The same table drives request validation, authorization
 * and the OpenAPI document, so an undocumented route cannot exist.
 */

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** JSON body (default) ... */
  json?: unknown;
  /** ... or a text body with its content type. */
  text?: string;
  contentType?: string;
  /** The handler has written the response itself (e.g. a streamed download). */
  sent?: true;
}

export function reply(r: Reply): Reply & { __reply: true } {
  return { ...r, __reply: true };
}

function isReply(x: unknown): x is Reply & { __reply: true } {
  return typeof x === 'object' && x !== null && (x as { __reply?: unknown }).__reply === true;
}

export interface RouteContext<Q = Record<string, unknown>, B = unknown> {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: Q;
  body: B;
  principal: Principal | undefined;
  /** Name to record as the actor of an action. */
  actor: string;
  clientAddress: string;
}

export interface Route {
  method: Method;
  /** Path template with {param} segments, e.g. /api/v1/jobs/{name}. */
  path: string;
  /** 'public' = no authentication. */
  auth: 'public' | Role;
  tag: string;
  summary: string;
  description?: string;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Documented success status (default 200). */
  status?: number;
  /** Success response description / schema for the OpenAPI document. */
  response?: { description: string; schema?: z.ZodType; contentType?: string };
  handler: (ctx: RouteContext<any, any>) => Promise<unknown>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface CompiledRoute extends Route {
  regex: RegExp;
  keys: string[];
}

export function compileRoutes(routes: Route[]): CompiledRoute[] {
  const seen = new Set<string>();
  return routes.map((r) => {
    const id = `${r.method} ${r.path}`;
    if (seen.has(id)) throw new Error(`duplicate route ${id}`);
    seen.add(id);
    const keys: string[] = [];
    const pattern = r.path
      .split('/')
      .map((seg) => {
        const m = /^\{([A-Za-z]+)\}$/.exec(seg);
        if (!m) return seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
        keys.push(m[1]!);
        return '([^/]+)';
      })
      .join('/');
    return { ...r, regex: new RegExp(`^${pattern}$`), keys };
  });
}

export function matchRoute(routes: CompiledRoute[], method: string, pathname: string): { route: CompiledRoute; params: Record<string, string> } | { allowed: string[] } | undefined {
  const allowed: string[] = [];
  for (const r of routes) {
    const m = r.regex.exec(pathname);
    if (!m) continue;
    if (r.method !== method && !(method === 'HEAD' && r.method === 'GET')) {
      allowed.push(r.method);
      continue;
    }
    const params: Record<string, string> = {};
    r.keys.forEach((k, i) => {
      try {
        params[k] = decodeURIComponent(m[i + 1]!);
      } catch {
        throw new HttpError(400, `malformed path parameter ${k}`);
      }
    });
    return { route: r, params };
  }
  return allowed.length ? { allowed } : undefined;
}

export async function readBody(req: IncomingMessage, limit = 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function zodMessage(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.map(String).join('.') || '(body)'}: ${i.code === 'unrecognized_keys' ? `unknown key(s) ${i.keys.join(', ')}` : i.message}`)
    .join('; ');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 0);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, ...headers });
  res.end(text);
}

/**
 * A streamed body with its headers. The transfer is held to a deadline per
 * write (a client that stops reading is cut off); an error in the middle
 * destroys the connection, so the client sees a short body, never a
 * truncated one that looks complete.
 */
export async function sendStream(res: ServerResponse, status: number, headers: Record<string, string>, body: AsyncIterable<Buffer> | undefined, stallMs = 60_000): Promise<void> {
  res.writeHead(status, headers);
  if (!body) return void res.end();
  res.setTimeout(stallMs, () => res.destroy(new Error(`client stalled for ${stallMs} ms`)));
  await pipeline(Readable.from(body), res);
}

export function sendReply(res: ServerResponse, value: unknown, defaultStatus: number): void {
  if (isReply(value)) {
    if (value.sent) return;
    const status = value.status ?? defaultStatus;
    if (value.text !== undefined) sendText(res, status, value.text, value.contentType ?? 'text/plain; charset=utf-8', { 'cache-control': 'no-store', ...value.headers });
    else sendJson(res, status, value.json ?? null, value.headers);
    return;
  }
  sendJson(res, defaultStatus, value ?? null);
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k && !(k in out)) {
      try {
        out[k] = decodeURIComponent(v);
      } catch {
        /* ignore malformed cookie */
      }
    }
  }
  return out;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
