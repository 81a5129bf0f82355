import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, errorMessage } from '../errors.js';
import type { Catalog } from './catalog/types.js';
import { OpsMetrics } from './metrics.js';
import { backupHealth, type BackupHealth, type JobSpec } from './monitor.js';
import { redactText } from './templates.js';

/**
 * HTTP endpoints for monitoring (node:http, loopback by default):
 *
 *   GET /metrics         Prometheus text format (OpsMetrics)
 *   GET /health          200 {"status":"ok"} while the process is up
 *   GET /health/backup   200 {"status":"ok", jobs:[...]} when every job is within its RPO,
 *                        503 {"status":"failing", failing:[{job,status,reason}], jobs:[...]} otherwise
 *
 * HEAD is accepted wherever GET is; other methods get 405, other paths 404.
 * Internal errors give 500 with a generic body (details go to the log, redacted).
 */

export interface HealthServerOptions {
  /** "host:port", "[::1]:port" or ":port" (host defaults to 127.0.0.1). Overridden by host/port. */
  listen?: string;
  host?: string;
  /** 0 = any free port (see HealthServer.port). Default 9187. */
  port?: number;
  catalog: Catalog;
  /** Jobs to report; a function is re-read per request. */
  jobs: readonly JobSpec[] | (() => readonly JobSpec[]);
  now?: () => Date;
  /** Default: new OpsMetrics({catalog, jobs, now}). */
  metrics?: OpsMetrics;
  partialSatisfiesRpo?: boolean;
  log?: (msg: string) => void;
}

export interface HealthServer {
  readonly host: string;
  readonly port: number;
  /** e.g. http://127.0.0.1:9187 */
  readonly url: string;
  readonly metrics: OpsMetrics;
  close(): Promise<void>;
}

export const DEFAULT_LISTEN = '127.0.0.1:9187';

/** Parse "host:port", "[v6]:port", ":port" or "port". */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d+)$/.exec(s.trim()) ?? (/^(\d+)$/.test(s.trim()) ? [s, undefined, '', s.trim()] : null);
  if (!m) throw new ConfigError(`invalid listen address "${s}" (expected host:port, e.g. 127.0.0.1:9187)`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`invalid listen address "${s}": port out of range`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

function send(res: ServerResponse, status: number, body: string, contentType: string, head: boolean): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(head ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, obj: unknown, head: boolean): void {
  send(res, status, JSON.stringify(obj) + '\n', 'application/json; charset=utf-8', head);
}

export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const parsed = parseListen(opts.listen ?? DEFAULT_LISTEN);
  const host = opts.host ?? parsed.host;
  const port = opts.port ?? parsed.port;
  const log = opts.log ?? (() => {});
  const jobs = () => (typeof opts.jobs === 'function' ? opts.jobs() : opts.jobs);
  const metrics = opts.metrics ?? new OpsMetrics({ catalog: opts.catalog, jobs, ...(opts.now ? { now: opts.now } : {}) });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const head = req.method === 'HEAD';
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    const known = ['/metrics', '/health', '/health/backup'];
    if (!known.includes(pathname)) return sendJson(res, 404, { error: 'not found', endpoints: known }, head);
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      return sendJson(res, 405, { error: 'method not allowed' }, head);
    }
    if (pathname === '/health') return sendJson(res, 200, { status: 'ok' }, head);
    if (pathname === '/metrics') return send(res, 200, await metrics.render(), metrics.contentType, head);
    const h: BackupHealth = await backupHealth(opts.catalog, jobs(), {
      ...(opts.now ? { now: opts.now() } : {}),
      ...(opts.partialSatisfiesRpo !== undefined ? { partialSatisfiesRpo: opts.partialSatisfiesRpo } : {}),
    });
    return sendJson(res, h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'failing', at: h.at.toISOString(), failing: h.failing, jobs: h.jobs }, head);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      log(`health server: ${req.method} ${req.url}: ${redactText(errorMessage(err))}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' }, req.method === 'HEAD');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ConfigError(`cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${err.code ?? err.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  server.on('error', (err) => log(`health server: ${errorMessage(err)}`));
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  return {
    host: addr.address,
    port: addr.port,
    url: `http://${urlHost}:${addr.port}`,
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
