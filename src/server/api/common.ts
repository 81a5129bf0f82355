import { z } from 'zod';
import type { LifeboatConfig } from '../../config/config.js';
import type { ResolvedPlan } from '../../config/resolve.js';
import type { Catalog, RunRecord } from '../../ops/catalog/types.js';
import type { AuthStore } from '../auth.js';
import type { ServerConfig } from '../../config/server.js';
import { HttpError, type RouteContext } from '../http.js';
import { errorMessage } from '../../errors.js';
import { parseZonedTime, type MaintenanceStore } from '../maintenance.js';
import type { Task, TaskRegistry } from '../tasks.js';

/** What the API route handlers are given, and the small helpers several route groups share. */

export interface ApiDeps {
  cfg: LifeboatConfig;
  /** The plan, resolved once at server start-up: running jobs and drills take it. */
  plan: ResolvedPlan;
  catalog: Catalog;
  auth: AuthStore;
  maintenance: MaintenanceStore;
  tasks: TaskRegistry;
  server: ServerConfig;
  /** Session login (cookie) — implemented by the server (needs the response). */
  login: (ctx: RouteContext, user: string, password: string) => Promise<{ user: string; role: string; csrfToken: string; expiresAt: string }>;
  logout: (ctx: RouteContext) => Promise<void>;
  openapi: () => Record<string, unknown>;
}

export const limit = z.coerce.number().int().min(1).max(1000).optional();
export const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

export const impact = z.enum(['none', 'minor', 'major', 'critical']);
export const incidentStatus = z.enum(['investigating', 'identified', 'monitoring', 'resolved']);
export const serviceList = z.array(z.string().regex(/^[A-Za-z0-9_.-]+$/)).max(100);

export function intParam(v: string | undefined, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new HttpError(400, `${what} must be a positive integer`);
  return n;
}

export function runJson(r: RunRecord, withLog = false) {
  const { logTail, toolVersions, ...rest } = r;
  return { ...rest, ...(withLog ? { logTail, toolVersions } : {}) };
}

export function taskJson(t: Task) {
  return { ...t, log: t.log.slice(-100) };
}

/** Parse an ISO date/time with an explicit zone ('2025-01-31T10:00Z', '2025-01-31T11:00+01:00') or throw 400. */
export function when(s: string, what: string): Date {
  try {
    return parseZonedTime(s, what);
  } catch (err) {
    throw new HttpError(400, errorMessage(err));
  }
}

export function knownJob(cfg: LifeboatConfig, name: string): void {
  if (!cfg.jobs[name]) throw new HttpError(404, `unknown job "${name}"`);
}

export async function incidentOr404<T>(p: Promise<T | undefined>, id: number): Promise<T> {
  const v = await p;
  if (!v) throw new HttpError(404, `no incident ${id}`);
  return v;
}

/** The configured service names, and a check that a list names only those (400 otherwise). */
export function serviceChecks(cfg: LifeboatConfig): { knownServices: string[]; checkServices: (list: string[]) => void } {
  const knownServices = Object.keys(cfg.services);
  const checkServices = (list: string[]) => {
    const bad = list.filter((s) => !cfg.services[s]);
    if (bad.length) throw new HttpError(400, `unknown service(s) ${bad.join(', ')} (defined: ${knownServices.join(', ') || 'none'})`);
  };
  return { knownServices, checkServices };
}
