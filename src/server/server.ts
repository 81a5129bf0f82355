import { resolvePlan } from '../config/resolve.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LifeboatConfig } from '../config/config.js';
import { configPath } from '../config/paths.js';
import { secretFromConfig } from '../config/repos.js';
import type { Catalog } from '../ops/catalog/types.js';
import { AlertManager } from '../ops/notify/manager.js';
import { parseNotifiersConfig } from '../config/notifiers.js';
import { FleetStore } from '../ops/fleet/store.js';
import { startFleetWatch } from '../ops/fleet/watch.js';
import { PROCESS_INSTANCE } from '../ops/catalog/instance.js';
import { openConfigCatalog } from '../ops/service.js';
import { redactText } from '../ops/templates.js';
import { ConfigError, LifeboatError, errorMessage } from '../errors.js';
import { apiRoutes } from './api.js';
import { AuthStore, LoginLimiter, roleAllows, type Principal } from './auth.js';
import { parseDurationMs, serverConfig, type ServerConfig } from '../config/server.js';
import { compileRoutes, HttpError, matchRoute, parseCookies, readBody, sendJson, sendReply, sendText, zodMessage, type CompiledRoute, type RouteContext } from './http.js';
import { MaintenanceStore } from './maintenance.js';
import { openApiDocument } from './openapi.js';
import { loginPage, shellPage, notFoundPage } from './pages.js';
import { STATUS_STYLE_SOURCE, buildStatus, renderStatusHtml } from './status.js';
import { TaskRegistry } from './tasks.js';

/**
 * `lifeboat serve`: the dashboard, the JSON API (/api/v1) and the public
 * status page, on node:http. Request pipeline:
 *
 *   Host check (DNS rebinding) → security headers → route →
 *   authentication (Bearer token, else session cookie) → for POST/PUT/DELETE:
 *   Origin / Sec-Fetch-Site must be same-origin, and cookie sessions must send
 *   the session's CSRF token in X-CSRF-Token → role → zod validation → handler.
 */

export interface RunningServer {
  url: string;
  port: number;
  catalog: Catalog;
  tasks: TaskRegistry;
  auth: AuthStore;
  routes: CompiledRoute[];
  close(): Promise<void>;
}

/** web/ assets, found relative to this compiled file (dist-NAME/src/server, dist/src/server or src/server). */
export function webDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const cand = path.join(dir, 'web');
    if (existsSync(path.join(cand, 'app.js'))) return cand;
    dir = path.dirname(dir);
  }
  throw new LifeboatError('cannot find the web/ directory of the dashboard assets');
}

const STATIC_TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png' };

// the status page's own stylesheet is allowed by hash: the publish preview (a sandboxed srcdoc frame) uses it
const DASHBOARD_CSP = `default-src 'self'; script-src 'self'; style-src 'self' ${STATUS_STYLE_SOURCE}; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'`;

function cspWithStyleHash(html: string): string {
  const m = /<style>([\s\S]*?)<\/style>/.exec(html);
  const h = m ? `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'` : "'none'";
  return `default-src 'none'; style-src ${h}; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;
}

function openApiRoutes(routes: CompiledRoute[]) {
  return routes;
}

/** The API route table without a running server (for `lifeboat serve --openapi` and tests). */
export function openApiFor(cfg: LifeboatConfig): Record<string, unknown> {
  const fake = {} as never;
  const routes = apiRoutes({ cfg, plan: resolvePlan(cfg), catalog: fake, auth: fake, maintenance: fake, tasks: fake, server: serverConfig(cfg.server), login: fake, logout: fake, openapi: () => ({}) });
  return openApiDocument(routes);
}

function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(`invalid listen address "${listen}" (expected host:port)`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export async function startServer(
  cfg: LifeboatConfig,
  opts: {
    listen?: string;
    log?: (m: string) => void;
    catalog?: Catalog;
    /** Each time no API-started task (job run, restore, drill, runbook) is left running (TaskRegistry `idle`). */
    idle?: () => void;
  } = {},
): Promise<RunningServer> {
  const sc: ServerConfig = serverConfig(cfg.server);
  // the plan, resolved once at start-up (config/resolve.ts): job runs and drills take it
  const plan = resolvePlan(cfg);
  const log = opts.log ?? (() => {});
  const listen = parseListen(opts.listen ?? sc.listen);
  const catalog = opts.catalog ?? (await openConfigCatalog(cfg));
  const auth = new AuthStore(catalog);
  const maintenance = new MaintenanceStore(catalog);
  const tasks = new TaskRegistry(catalog, { log, ...(opts.idle ? { idle: opts.idle } : {}) });
  await tasks.init();
  await auth.listUsers();
  await maintenance.list({ current: true });
  if (sc.bootstrapAdmin && (await auth.listUsers()).length === 0) {
    const pw = secretFromConfig(cfg, sc.bootstrapAdmin.password, 'server.bootstrapAdmin.password');
    await auth.addUser(sc.bootstrapAdmin.user, 'operator', pw);
    log(`created operator ${sc.bootstrapAdmin.user} (server.bootstrapAdmin)`);
  }
  const web = webDir();
  const secure = !!sc.tls || (sc.publicUrl?.startsWith('https:') ?? false);
  const cookieName = secure ? '__Host-lb_session' : 'lb_session';
  const ttlMs = parseDurationMs(sc.sessionTtl);
  const limiter = new LoginLimiter(sc.loginRateLimit.maxFailures, parseDurationMs(sc.loginRateLimit.window));
  const publicOrigin = sc.publicUrl ? new URL(sc.publicUrl).origin : undefined;
  const allowedHosts = (() => {
    if (sc.allowedHosts) return new Set(sc.allowedHosts.map((h) => h.toLowerCase()));
    if (!publicOrigin && (listen.host === '0.0.0.0' || listen.host === '::')) return undefined; // cannot know: accept any
    const s = new Set(['localhost', '127.0.0.1', '::1', '[::1]', listen.host.toLowerCase()]);
    if (publicOrigin) s.add(new URL(publicOrigin).hostname.toLowerCase());
    return s;
  })();

  const principalOf = async (req: IncomingMessage): Promise<Principal | undefined> => {
    const h = req.headers.authorization;
    if (h) {
      const m = /^Bearer\s+(\S+)$/i.exec(h);
      if (!m) throw new HttpError(401, 'Authorization header must be "Bearer <token>"');
      const p = await auth.checkToken(m[1]!);
      if (!p) throw new HttpError(401, 'invalid, expired or revoked API token');
      return p;
    }
    const sid = parseCookies(req.headers.cookie)[cookieName];
    return sid ? auth.session(sid) : undefined;
  };

  const ownOrigin = (req: IncomingMessage) => publicOrigin ?? `${sc.tls ? 'https' : 'http'}://${req.headers.host ?? ''}`;
  const sameOrigin = (req: IncomingMessage): boolean => {
    const sfs = req.headers['sec-fetch-site'];
    if (sfs !== undefined && sfs !== 'same-origin' && sfs !== 'none') return false;
    const origin = req.headers.origin;
    if (origin === undefined) return true; // not a browser (curl, scripts): nothing ambient to forge
    return origin === ownOrigin(req);
  };
  const clientAddress = (req: IncomingMessage) => req.socket.remoteAddress ?? 'unknown';

  const cookie = (value: string, maxAgeSec: number) =>
    `${cookieName}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSec}${secure ? '; Secure' : ''}`;

  const doLogin = async (req: IncomingMessage, res: ServerResponse, user: string, password: string) => {
    const key = `${clientAddress(req)}|${user.toLowerCase()}`;
    const wait = limiter.blockedFor(key);
    if (wait) throw new HttpError(429, `too many failed logins: try again in ${Math.ceil(wait / 1000)} s`, { retryAfterSeconds: Math.ceil(wait / 1000) });
    const u = await auth.checkPassword(user, password);
    if (!u) {
      limiter.fail(key);
      log(`login failed for "${user.slice(0, 64)}" from ${clientAddress(req)}`);
      throw new HttpError(401, 'wrong user name or password');
    }
    limiter.succeed(key);
    const s = await auth.createSession(u, ttlMs);
    res.setHeader('set-cookie', cookie(s.id, Math.floor(ttlMs / 1000)));
    log(`login: ${u.name} (${u.role}) from ${clientAddress(req)}`);
    return { user: u.name, role: u.role, csrfToken: s.csrf, expiresAt: s.expiresAt.toISOString() };
  };

  let doc: Record<string, unknown> | undefined;
  const routes = compileRoutes(
    apiRoutes({
      cfg,
      plan,
      catalog,
      auth,
      maintenance,
      tasks,
      server: sc,
      login: (ctx, user, password) => doLogin(ctx.req, ctx.res, user, password),
      logout: async (ctx) => {
        if (ctx.principal?.sessionHash) await auth.endSession(ctx.principal.sessionHash);
        ctx.res.setHeader('set-cookie', cookie('', 0));
      },
      openapi: () => (doc ??= openApiDocument(openApiRoutes(routes))),
    }),
  );

  const checkCsrf = (req: IncomingMessage, p: Principal | undefined) => {
    if (!sameOrigin(req)) throw new HttpError(403, 'cross-origin request refused');
    if (p?.kind === 'session') {
      const got = Buffer.from(String(req.headers['x-csrf-token'] ?? ''));
      const want = Buffer.from(p.csrf ?? '');
      if (got.length !== want.length || !timingSafeEqual(got, want)) throw new HttpError(403, 'missing or wrong X-CSRF-Token header');
    }
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const method = req.method ?? 'GET';
    const m = matchRoute(routes, method, url.pathname);
    if (!m) throw new HttpError(404, `no such API endpoint: ${url.pathname}`);
    if ('allowed' in m) throw new HttpError(405, `method ${method} not allowed (allowed: ${m.allowed.join(', ')})`, {});
    const { route, params } = m;
    const principal = await principalOf(req);
    if (route.auth !== 'public' && !principal) throw new HttpError(401, 'authentication required (session cookie or Authorization: Bearer <token>)');
    if (method !== 'GET' && method !== 'HEAD') checkCsrf(req, principal);
    if (route.auth !== 'public' && !roleAllows(principal!.role, route.auth)) throw new HttpError(403, `this needs role ${route.auth}; you are ${principal!.role}`);
    let query: Record<string, unknown> = {};
    if (route.query) {
      const raw = Object.fromEntries(url.searchParams.entries());
      const q = route.query.safeParse(raw);
      if (!q.success) throw new HttpError(400, `invalid query: ${zodMessage(q.error)}`);
      query = q.data as Record<string, unknown>;
    }
    let body: unknown;
    const text = method === 'GET' || method === 'HEAD' ? '' : await readBody(req);
    if (route.body) {
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'send the request body as application/json');
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : {};
      } catch {
        throw new HttpError(400, 'request body is not valid JSON');
      }
      const b = route.body.safeParse(json);
      if (!b.success) throw new HttpError(400, `invalid request: ${zodMessage(b.error)}`);
      body = b.data;
    }
    const ctx: RouteContext = { req, res, params, query, body, principal, actor: principal?.name ?? 'anonymous', clientAddress: clientAddress(req) };
    const out = await route.handler(ctx);
    sendReply(res, out, route.status ?? 200);
  };

  const serveStatic = async (res: ServerResponse, name: string) => {
    if (!/^[A-Za-z0-9_-]+\.(js|css|svg|png)$/.test(name)) throw new HttpError(404, 'not found');
    let data: Buffer;
    try {
      data = await readFile(path.join(web, name));
    } catch {
      throw new HttpError(404, 'not found');
    }
    res.writeHead(200, { 'content-type': STATIC_TYPES[path.extname(name)]!, 'cache-control': 'no-cache' });
    res.end(data);
  };

  const handlePage = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const method = req.method ?? 'GET';
    const p = url.pathname;
    if ((method === 'GET' || method === 'HEAD') && p.startsWith('/static/')) return serveStatic(res, p.slice('/static/'.length));
    if ((method === 'GET' || method === 'HEAD') && (p === '/status' || p === '/status/')) {
      const model = await buildStatus(cfg, catalog);
      for (const w of model.warnings) log(`status page: ${w}`);
      const html = renderStatusHtml(model, { refreshSeconds: sc.statusPage.refreshSeconds });
      return sendText(res, 200, html, 'text/html; charset=utf-8', { 'content-security-policy': cspWithStyleHash(html), 'cache-control': 'no-cache' });
    }
    if ((method === 'GET' || method === 'HEAD') && p === '/status.json') {
      const { warnings: _w, ...m } = await buildStatus(cfg, catalog);
      void _w;
      return sendJson(res, 200, m, { 'access-control-allow-origin': '*', 'cache-control': 'no-cache' });
    }
    if (p === '/login') {
      if (method === 'GET' || method === 'HEAD') {
        const html = loginPage({ next: safeNext(url.searchParams.get('next')) });
        return sendText(res, 200, html, 'text/html; charset=utf-8', { 'content-security-policy': DASHBOARD_CSP, 'cache-control': 'no-store' });
      }
      if (method === 'POST') {
        if (!sameOrigin(req)) throw new HttpError(403, 'cross-origin request refused');
        const form = new URLSearchParams(await readBody(req, 16 * 1024));
        const next = safeNext(form.get('next'));
        try {
          await doLogin(req, res, form.get('user') ?? '', form.get('password') ?? '');
        } catch (err) {
          if (!(err instanceof HttpError)) throw err;
          res.removeHeader('set-cookie');
          const html = loginPage({ next, error: err.message, user: form.get('user') ?? '' });
          return sendText(res, err.status, html, 'text/html; charset=utf-8', { 'content-security-policy': DASHBOARD_CSP, 'cache-control': 'no-store' });
        }
        res.writeHead(303, { location: next });
        return void res.end();
      }
    }
    if ((method === 'GET' || method === 'HEAD') && p === '/') {
      const principal = await principalOf(req).catch(() => undefined);
      if (!principal) {
        res.writeHead(303, { location: '/login' });
        return void res.end();
      }
      return sendText(res, 200, shellPage({ title: sc.statusPage.title }), 'text/html; charset=utf-8', { 'content-security-policy': DASHBOARD_CSP, 'cache-control': 'no-store' });
    }
    if (p === '/favicon.ico') {
      res.writeHead(204);
      return void res.end();
    }
    return sendText(res, 404, notFoundPage(), 'text/html; charset=utf-8', { 'content-security-policy': DASHBOARD_CSP });
  };

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const started = Date.now();
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader('referrer-policy', 'same-origin');
    if (secure) res.setHeader('strict-transport-security', 'max-age=31536000');
    let url: URL;
    const isApi = (req.url ?? '').startsWith('/api/');
    try {
      // Liveness for container health checks and probes, which reach the
      // server by its pod or container address: answered for any Host (it
      // says nothing but "up"), before the DNS-rebinding Host check.
      if ((req.method === 'GET' || req.method === 'HEAD') && (req.url === '/health' || req.url?.startsWith('/health?'))) {
        return sendJson(res, 200, { status: 'ok' }, { 'cache-control': 'no-store' });
      }
      const hostname = hostOnly(req.headers.host ?? '');
      if (allowedHosts && !allowedHosts.has(hostname)) throw new HttpError(421, `host "${hostname}" is not served here (server.allowedHosts / server.publicUrl)`);
      url = new URL(req.url ?? '/', 'http://localhost');
      if (isApi) await handleApi(req, res, url);
      else await handlePage(req, res, url);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      let status = 500;
      let message: string;
      let extra: Record<string, unknown> = {};
      if (err instanceof HttpError) {
        status = err.status;
        message = err.message;
        extra = err.extra;
        if (status === 429 && typeof extra.retryAfterSeconds === 'number') res.setHeader('retry-after', String(extra.retryAfterSeconds));
        if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="lifeboat"');
      } else if (err instanceof LifeboatError) {
        status = err.exitCode === 2 ? 400 : 500;
        message = redactText(err.message);
      } else {
        message = redactText(errorMessage(err));
        log(`error on ${req.method} ${req.url}: ${(err as Error)?.stack ?? message}`);
      }
      if (isApi || status !== 404) sendJson(res, status, { error: message, ...extra });
      else sendText(res, 404, notFoundPage(), 'text/html; charset=utf-8');
    } finally {
      if (process.env.LIFEBOAT_SERVER_ACCESS_LOG) log(`${req.method} ${(req.url ?? '').split('?')[0]} ${res.statusCode} ${Date.now() - started}ms`);
    }
  };

  const server: Server = sc.tls
    ? createHttpsServer({ cert: readFileSync(configPath(cfg, sc.tls.cert)), key: readFileSync(configPath(cfg, sc.tls.key)) }, (q, s) => void handler(q, s))
    : createHttpServer((q, s) => void handler(q, s));
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new LifeboatError(`cannot listen on ${listen.host}:${listen.port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    server.listen(listen.port, listen.host, () => resolve());
  });
  // the fleet: while no agent is live (none would report), the server reports missed heartbeats
  const alerts = cfg.notifiers ? AlertManager.fromConfig(parseNotifiersConfig(cfg.notifiers), { catalog, baseDir: cfg.dir, log }) : undefined;
  const fleetCfg = cfg.daemon.fleet;
  const fleetWatch = alerts
    ? startFleetWatch({
        store: new FleetStore(catalog, { timeoutMs: parseDurationMs(fleetCfg.catalogTimeout), missedAfter: fleetCfg.missedAfter }),
        alerts,
        holder: `serve ${PROCESS_INSTANCE}`,
        tier: fleetCfg.tier,
        missedAfter: fleetCfg.missedAfter,
        everyMs: parseDurationMs(fleetCfg.heartbeat),
        log,
      })
    : undefined;
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const url = `${sc.tls ? 'https' : 'http'}://${hostForUrl}:${port}`;
  return {
    url,
    port,
    catalog,
    tasks,
    auth,
    routes,
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      await fleetWatch?.stop();
      await alerts?.close();
      await tasks.close();
      if (!opts.catalog) await catalog.close();
    },
  };
}

function hostOnly(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.replace(/:\d+$/, '');
}

function safeNext(v: string | null): string {
  return v && v.startsWith('/') && !v.startsWith('//') && !v.startsWith('/\\') ? v : '/';
}
