import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { LifeboatConfig } from '../config/config.js';
import type { Catalog } from '../ops/catalog/types.js';
import { IncidentStore, type Incident, type IncidentImpact } from '../ops/incidents.js';
import { evaluate, jobsFromConfig, severityRank } from '../ops/monitor.js';
import { computeAvailability, type ServiceAvailability } from '../ops/availability.js';
import { errorMessage } from '../errors.js';
import { serverConfig } from '../config/server.js';
import { escapeHtml } from './http.js';
import { MaintenanceStore, type MaintenanceWindow } from './maintenance.js';
import { byCodeUnit } from '../util/compare.js';

/**
 * The public status page: per service (config `services:`), a state derived
 * from the health of its backup jobs (src/ops/monitor.ts) and from open
 * incidents that name it; open incidents with their public updates; planned
 * maintenance; the incident history. It exposes no job names, error
 * messages, hosts or paths: only service names, descriptions, and what
 * operators chose to publish: incidents whose visibility is `public` (never
 * the private ones runbooks open by default), their public headline, and
 * only the updates an operator marked public (never system updates written
 * by Lifeboat, never timeline events).
 */

export type ComponentState = 'operational' | 'degraded' | 'outage' | 'maintenance';
export type OverallState = 'operational' | 'degraded' | 'outage';

export interface StatusComponent {
  name: string;
  description: string | null;
  state: ComponentState;
  /** Short public reason ("open incident: …", "backups behind schedule", "planned maintenance"). */
  reasons: string[];
  /** Measured availability over 30/90 days and one bar per day (src/ops/availability.ts); null when incidents could not be read. */
  availability: Omit<ServiceAvailability, 'service'> | null;
}

export interface PublicIncident {
  id: number;
  title: string;
  status: string;
  impact: IncidentImpact;
  services: string[];
  startedAt: string;
  resolvedAt: string | null;
  updates: Array<{ at: string; status: string | null; message: string }>;
}

export interface PublicMaintenance {
  id: number;
  title: string;
  description: string;
  services: string[];
  startsAt: string;
  endsAt: string;
  state: MaintenanceWindow['state'];
}

export interface StatusModel {
  title: string;
  description: string | null;
  generatedAt: string;
  state: OverallState;
  components: StatusComponent[];
  incidents: PublicIncident[];
  maintenance: PublicMaintenance[];
  history: PublicIncident[];
  /** Set when a data source could not be read (the page still renders). */
  warnings: string[];
}

const STATE_RANK: Record<ComponentState, number> = { operational: 0, maintenance: 1, degraded: 2, outage: 3 };

function worse(a: ComponentState, b: ComponentState): ComponentState {
  return STATE_RANK[b] > STATE_RANK[a] ? b : a;
}

function impactState(impact: IncidentImpact): ComponentState | undefined {
  if (impact === 'critical' || impact === 'major') return 'outage';
  if (impact === 'minor') return 'degraded';
  return undefined;
}

/** Whether an incident may appear on the public page at all. */
export function isPublicIncident(i: Incident): boolean {
  return i.visibility === 'public';
}

/** Exactly what the public page shows of an incident (also used for the dashboard's preview). */
export function publicIncident(i: Incident): PublicIncident {
  return {
    id: i.id,
    title: i.publicTitle ?? i.title,
    status: i.status,
    impact: i.impact,
    services: i.services,
    startedAt: i.startedAt.toISOString(),
    resolvedAt: i.resolvedAt ? i.resolvedAt.toISOString() : null,
    updates: i.updates.filter((u) => u.public && !u.system).map((u) => ({ at: u.at.toISOString(), status: u.status, message: u.message })),
  };
}

function publicMaintenance(w: MaintenanceWindow): PublicMaintenance {
  return { id: w.id, title: w.title, description: w.description, services: w.services, startsAt: w.startsAt.toISOString(), endsAt: w.endsAt.toISOString(), state: w.state };
}

/**
 * `availabilityFrom: 'all'` counts private incidents too (the dashboard's
 * internal figure); the public page and /status.json count only published ones.
 */
export async function buildStatus(cfg: LifeboatConfig, catalog: Catalog, opts: { now?: Date; availabilityFrom?: 'public' | 'all' } = {}): Promise<StatusModel> {
  const now = opts.now ?? new Date();
  const sc = serverConfig(cfg.server).statusPage;
  const warnings: string[] = [];
  const report = await evaluate(catalog, jobsFromConfig(cfg), { now, skip: ['free-space'] });
  let open: Incident[] = [];
  let history: Incident[] = [];
  try {
    const store = new IncidentStore(catalog);
    open = (await store.list({ open: true, visibility: 'public', limit: 100 })).filter(isPublicIncident);
    const since = now.getTime() - sc.historyDays * 86_400_000;
    history = (await store.list({ visibility: 'public', limit: 500 })).filter((i) => isPublicIncident(i) && i.resolvedAt && i.startedAt.getTime() >= since);
  } catch (err) {
    warnings.push(`incidents unavailable: ${errorMessage(err)}`);
  }
  let availability: ServiceAvailability[] = [];
  try {
    availability = await computeAvailability(cfg, catalog, { now, ...(opts.availabilityFrom === 'all' ? {} : { visibility: 'public' as const }) });
  } catch (err) {
    warnings.push(`availability unavailable: ${errorMessage(err)}`);
  }
  const windows = await new MaintenanceStore(catalog).list({ current: true, now });
  const degradeRank = severityRank(sc.degradeOn);
  const components: StatusComponent[] = Object.entries(cfg.services).map(([name, svc]) => {
    let state: ComponentState = 'operational';
    const reasons: string[] = [];
    const bad = svc.jobs.filter((j) => severityRank(report.jobs[j] ?? 'ok') >= degradeRank);
    if (bad.length) {
      state = worse(state, 'degraded');
      reasons.push('backups failing or behind schedule');
    }
    for (const i of open) {
      if (!i.services.includes(name)) continue;
      const s = impactState(i.impact);
      if (s) state = worse(state, s);
      reasons.push(`incident: ${i.publicTitle ?? i.title}`);
    }
    for (const w of windows) {
      if (w.state === 'in-progress' && w.services.includes(name)) {
        state = worse(state, 'maintenance');
        reasons.push(`maintenance: ${w.title}`);
      }
    }
    const av = availability.find((a) => a.service === name);
    return { name, description: svc.description ?? null, state, reasons, availability: av ? { target: av.target, windows: av.windows, days: av.days } : null };
  });
  let overall: OverallState = 'operational';
  for (const c of components) {
    if (c.state === 'outage') overall = 'outage';
    else if (c.state === 'degraded' && overall === 'operational') overall = 'degraded';
  }
  // an open incident that names no configured service still affects the whole page
  for (const i of open) {
    if (i.services.some((s) => cfg.services[s])) continue;
    const s = impactState(i.impact);
    if (s === 'outage') overall = 'outage';
    else if (s === 'degraded' && overall === 'operational') overall = 'degraded';
  }
  return {
    title: sc.title,
    description: sc.description ?? null,
    generatedAt: now.toISOString(),
    state: overall,
    components,
    incidents: open.map(publicIncident),
    maintenance: windows.map(publicMaintenance).sort((a, b) => byCodeUnit(a.startsAt, b.startsAt)),
    history: history.map(publicIncident),
    warnings,
  };
}

const LABEL: Record<ComponentState, string> = { operational: 'Operational', degraded: 'Degraded', outage: 'Outage', maintenance: 'Maintenance' };
const OVERALL: Record<OverallState, string> = { operational: 'All systems operational', degraded: 'Some systems degraded', outage: 'Service outage' };

const CSS = `
*{box-sizing:border-box}body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f6f8;color:#1d2329}
main{max-width:820px;margin:0 auto;padding:24px 16px}h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.banner{border-radius:8px;padding:16px 20px;color:#fff;font-size:19px;font-weight:600;margin:16px 0}
.s-operational{background:#17703d}.s-degraded{background:#8a5a00}.s-outage{background:#b03025}.s-maintenance{background:#2c6fbb}
.card{background:#fff;border:1px solid #dde3e8;border-radius:8px;margin:8px 0;padding:12px 16px}
.comp{display:flex;justify-content:space-between;align-items:center;gap:12px}.comp small{color:#5b6670;display:block}
.pill{border-radius:999px;padding:2px 10px;color:#fff;font-size:13px;white-space:nowrap}
.upd{border-left:3px solid #dde3e8;margin:6px 0 0;padding:2px 10px}.muted{color:#5b6670;font-size:13px}
footer{color:#5b6670;font-size:12px;margin-top:32px}
.avail{display:block;color:#5b6670;font-size:13px}.avail .miss{color:#b03025;font-weight:600}
.bars{display:flex;gap:1px;height:28px;margin-top:6px}.bars span{flex:1;min-width:2px;border-radius:1px}
.bars-axis{display:flex;justify-content:space-between;font-size:12px}.d-up{background:#17703d}.d-degraded{background:#c98a00}.d-down{background:#b03025}`;

/** CSP source for the status page's inline stylesheet (lets the dashboard show the publish preview with the page's own style). */
export const STATUS_STYLE_SOURCE = `'sha256-${createHash('sha256').update(CSS).digest('base64')}'`;

function fmt(iso: string): string {
  return iso.replace('T', ' ').slice(0, 16) + ' UTC';
}

/** One incident card as on the public page (the dashboard's preview shows this very HTML). */
export function incidentHtml(i: PublicIncident): string {
  const updates = i.updates
    .slice()
    .reverse()
    .map((u) => `<div class="upd"><strong>${escapeHtml(u.status ?? 'update')}</strong> <span class="muted">${fmt(u.at)}</span><br>${escapeHtml(u.message)}</div>`)
    .join('');
  return `<div class="card incident" data-incident="${i.id}"><strong>${escapeHtml(i.title)}</strong> <span class="muted">${escapeHtml(i.impact)} impact · ${escapeHtml(i.status)} · since ${fmt(i.startedAt)}${i.resolvedAt ? ` · resolved ${fmt(i.resolvedAt)}` : ''}</span>${i.services.length ? `<div class="muted">Affects: ${i.services.map(escapeHtml).join(', ')}</div>` : ''}${updates}</div>`;
}

/** A self-contained page with just one incident card, styled like the status page (the dashboard's publish preview). */
export function renderIncidentPreviewHtml(i: PublicIncident): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><style>${CSS}</style></head><body><main>${incidentHtml(i)}</main></body></html>`;
}

function pctText(p: number): string {
  return `${p.toFixed(p === 100 ? 0 : p >= 99.99 ? 3 : 2)}%`;
}

/** "99.95% (30 days) · 99.98% (90 days) · target 99.9%" and one bar per day (title: date and availability). */
function availabilityHtml(a: StatusComponent['availability']): string {
  if (!a) return '';
  const wins = a.windows
    .map((w) => `<span data-window="${w.days}" data-percent="${w.percent}"${w.meetsTarget === false ? ' class="miss"' : ''}>${pctText(w.percent)}</span> (${w.days} days)`)
    .join(' · ');
  const target = a.target === null ? '' : ` · target ${a.target}%`;
  const bars = a.days
    .map((d) => `<span class="d-${d.level}" data-date="${d.date}" data-percent="${d.percent}" title="${d.date}: ${pctText(d.percent)}"></span>`)
    .join('');
  return `<small class="avail">Availability ${wins}${target}</small><div class="bars" role="img" aria-label="Daily availability, last ${a.days.length} days">${bars}</div><div class="bars-axis muted"><span>${a.days.length} days ago</span><span>today</span></div>`;
}

/** Self-contained HTML (inline CSS, no script). */
export function renderStatusHtml(m: StatusModel, opts: { refreshSeconds?: number } = {}): string {
  const comps = m.components
    .map(
      (c) =>
        `<div class="card" data-component="${escapeHtml(c.name)}" data-state="${c.state}"><div class="comp"><div><strong>${escapeHtml(c.name)}</strong>${c.description ? `<small>${escapeHtml(c.description)}</small>` : ''}${c.reasons.length ? `<small>${c.reasons.map(escapeHtml).join(' · ')}</small>` : ''}</div><span class="pill s-${c.state}">${LABEL[c.state]}</span></div>${availabilityHtml(c.availability)}</div>`,
    )
    .join('');
  const maint = m.maintenance
    .map((w) => `<div class="card maintenance" data-window="${w.id}"><strong>${escapeHtml(w.title)}</strong> <span class="muted">${w.state} · ${fmt(w.startsAt)} – ${fmt(w.endsAt)}${w.services.length ? ` · ${w.services.map(escapeHtml).join(', ')}` : ''}</span>${w.description ? `<div>${escapeHtml(w.description)}</div>` : ''}</div>`)
    .join('');
  const refresh = opts.refreshSeconds ? `<meta http-equiv="refresh" content="${opts.refreshSeconds}">` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">${refresh}
<title>${escapeHtml(m.title)}</title><style>${CSS}</style></head>
<body><main>
<h1>${escapeHtml(m.title)}</h1>${m.description ? `<p class="muted">${escapeHtml(m.description)}</p>` : ''}
<div class="banner s-${m.state}" id="overall" data-state="${m.state}">${OVERALL[m.state]}</div>
<h2>Components</h2>${comps || '<p class="muted">No services configured.</p>'}
<h2>Open incidents</h2>${m.incidents.map(incidentHtml).join('') || '<p class="muted">No open incidents.</p>'}
<h2>Planned maintenance</h2>${maint || '<p class="muted">No maintenance scheduled.</p>'}
<h2>Incident history</h2>${m.history.map(incidentHtml).join('') || '<p class="muted">No incidents in this period.</p>'}
<footer>Updated ${fmt(m.generatedAt)} · <a href="status.json">JSON</a></footer>
</main></body></html>
`;
}

/** `lifeboat status-page export`: index.html + status.json, each written to a temp file and renamed. */
export async function exportStatusPage(cfg: LifeboatConfig, catalog: Catalog, outDir: string): Promise<{ files: string[]; model: StatusModel }> {
  const model = await buildStatus(cfg, catalog);
  await mkdir(outDir, { recursive: true });
  const files: string[] = [];
  const { warnings: _w, ...publicModel } = model;
  void _w;
  for (const [name, text] of [
    ['index.html', renderStatusHtml(model)],
    ['status.json', JSON.stringify(publicModel, null, 2) + '\n'],
  ] as const) {
    const dst = path.join(outDir, name);
    const tmp = `${dst}.tmp-${process.pid}`;
    await writeFile(tmp, text);
    await rename(tmp, dst);
    files.push(dst);
  }
  return { files, model };
}
