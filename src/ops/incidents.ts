import { hostname } from 'node:os';
import type { LifeboatConfig } from '../config/config.js';
import { ConfigError, LifeboatError, errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import type { Catalog, Migration, SqlRow } from './catalog/types.js';
import { DEFAULT_INCIDENT_TEMPLATES, checkIncidentChannels, incidentsConfigSchema, renderIncidentTemplate, type IncidentEvent, type IncidentsConfig } from '../config/incidents.js';
import { createNotifiers } from './notify/create.js';
import { deliver } from './notify/deliver.js';
import { parseNotifiersConfig } from '../config/notifiers.js';
import type { AlertMessage, DeliveryResult, Notifier } from './notify/notifier.js';
import { redactText } from './templates.js';

/**
 * Incidents: what broke, who is affected, what was done (timeline), and the
 * post-incident review (root cause, lessons learned, action items). Every
 * runbook run opens one; operators open them by hand for the status page.
 *
 * Stored in the catalog (migrations 200-209). Updates (status changes and
 * messages, public or internal) and timeline events (runbook steps,
 * notifications) are separate tables; `timeline` merges both in time order.
 *
 * Visibility: an incident is `private` unless an operator chose to publish
 * it. The status page (src/server/status.ts) shows only public incidents, and
 * within them only updates an operator marked public; system updates (what
 * Lifeboat wrote: runbook start/finish) and timeline events never.
 * When the store is given the config, creating, updating and resolving an
 * incident also notifies the `incidents.channels` (see config/incidents.ts).
 */

export type IncidentStatus = 'investigating' | 'identified' | 'monitoring' | 'resolved';
export type IncidentImpact = 'none' | 'minor' | 'major' | 'critical';
export const INCIDENT_STATUSES: readonly IncidentStatus[] = ['investigating', 'identified', 'monitoring', 'resolved'];
export const INCIDENT_IMPACTS: readonly IncidentImpact[] = ['none', 'minor', 'major', 'critical'];
export type IncidentVisibility = 'public' | 'private';
export const INCIDENT_VISIBILITIES: readonly IncidentVisibility[] = ['public', 'private'];
export interface IncidentUpdate {
  id: number;
  at: Date;
  status: IncidentStatus | null;
  message: string;
  author: string | null;
  /** Marked public by the operator who wrote it. Only public operator updates of public incidents reach the status page. */
  public: boolean;
  /** Written by Lifeboat itself (runbook start/finish): never public. */
  system: boolean;
}
export interface Incident {
  id: number;
  title: string;
  status: IncidentStatus;
  impact: IncidentImpact;
  services: string[];
  startedAt: Date;
  resolvedAt: Date | null;
  runbookRunId: number | null;
  /** public: on the status page (only its public operator updates); private: internal only (default for automatic incidents). */
  visibility: IncidentVisibility;
  /** The headline on the status page (operator-written); null: the title. */
  publicTitle: string | null;
  summary: string;
  rootCause: string;
  lessonsLearned: string;
  actionItems: string[];
  updates: IncidentUpdate[];
  timeline: Array<{ at: Date; kind: string; text: string }>;
}

/** What availability needs of an incident (IncidentStore.spans). */
export interface IncidentSpan {
  id: number;
  impact: IncidentImpact;
  services: string[];
  startedAt: Date;
  resolvedAt: Date | null;
}

const MAX_TEXT = 8192;
const cut = (s: string, n = MAX_TEXT) => (s.length <= n ? s : s.slice(0, n - 1) + '…');

export const INCIDENT_MIGRATIONS: readonly Migration[] = [
  {
    version: 200,
    name: 'incidents',
    sqlite: [
      `CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('investigating','identified','monitoring','resolved')),
        impact TEXT NOT NULL CHECK (impact IN ('none','minor','major','critical')),
        services TEXT NOT NULL DEFAULT '[]',
        started_at INTEGER NOT NULL,
        resolved_at INTEGER,
        runbook_run_id INTEGER,
        summary TEXT NOT NULL DEFAULT '',
        root_cause TEXT NOT NULL DEFAULT '',
        lessons_learned TEXT NOT NULL DEFAULT '',
        action_items TEXT NOT NULL DEFAULT '[]'
      )`,
      'CREATE INDEX incidents_status_idx ON incidents (status, started_at)',
      `CREATE TABLE incident_updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        status TEXT,
        message TEXT NOT NULL,
        author TEXT,
        public INTEGER NOT NULL DEFAULT 1
      )`,
      'CREATE INDEX incident_updates_idx ON incident_updates (incident_id, at)',
      `CREATE TABLE incident_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL
      )`,
      'CREATE INDEX incident_events_idx ON incident_events (incident_id, at)',
      `CREATE TABLE incident_escalations (
        incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
        level INTEGER NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (incident_id, level)
      )`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.incidents (
        id BIGSERIAL PRIMARY KEY,
        title TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('investigating','identified','monitoring','resolved')),
        impact TEXT NOT NULL CHECK (impact IN ('none','minor','major','critical')),
        services TEXT NOT NULL DEFAULT '[]',
        started_at TIMESTAMPTZ NOT NULL,
        resolved_at TIMESTAMPTZ,
        runbook_run_id BIGINT,
        summary TEXT NOT NULL DEFAULT '',
        root_cause TEXT NOT NULL DEFAULT '',
        lessons_learned TEXT NOT NULL DEFAULT '',
        action_items TEXT NOT NULL DEFAULT '[]'
      )`,
      `CREATE INDEX incidents_status_idx ON ${s}.incidents (status, started_at)`,
      `CREATE TABLE ${s}.incident_updates (
        id BIGSERIAL PRIMARY KEY,
        incident_id BIGINT NOT NULL REFERENCES ${s}.incidents(id) ON DELETE CASCADE,
        at TIMESTAMPTZ NOT NULL,
        status TEXT,
        message TEXT NOT NULL,
        author TEXT,
        public BOOLEAN NOT NULL DEFAULT true
      )`,
      `CREATE INDEX incident_updates_idx ON ${s}.incident_updates (incident_id, at)`,
      `CREATE TABLE ${s}.incident_events (
        id BIGSERIAL PRIMARY KEY,
        incident_id BIGINT NOT NULL REFERENCES ${s}.incidents(id) ON DELETE CASCADE,
        at TIMESTAMPTZ NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL
      )`,
      `CREATE INDEX incident_events_idx ON ${s}.incident_events (incident_id, at)`,
      `CREATE TABLE ${s}.incident_escalations (
        incident_id BIGINT NOT NULL REFERENCES ${s}.incidents(id) ON DELETE CASCADE,
        level INTEGER NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (incident_id, level)
      )`,
    ],
  },
  {
    // Visibility: incidents opened by hand stay public as they were; incidents
    // opened by runbooks become private, and the updates Lifeboat wrote for
    // them ("Runbook \"x\" started by ...", "... completed/FAILED ...") become
    // internal system updates.
    version: 201,
    name: 'incident visibility',
    sqlite: [
      `ALTER TABLE incidents ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public','private'))`,
      'ALTER TABLE incidents ADD COLUMN public_title TEXT',
      'ALTER TABLE incident_updates ADD COLUMN system INTEGER NOT NULL DEFAULT 0',
      `UPDATE incidents SET visibility = 'private' WHERE runbook_run_id IS NOT NULL`,
      `UPDATE incident_updates SET system = 1, public = 0 WHERE message LIKE 'Runbook "%' AND incident_id IN (SELECT id FROM incidents WHERE runbook_run_id IS NOT NULL)`,
    ],
    postgres: (s) => [
      `ALTER TABLE ${s}.incidents ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public','private'))`,
      `ALTER TABLE ${s}.incidents ADD COLUMN public_title TEXT`,
      `ALTER TABLE ${s}.incident_updates ADD COLUMN system BOOLEAN NOT NULL DEFAULT false`,
      `UPDATE ${s}.incidents SET visibility = 'private' WHERE runbook_run_id IS NOT NULL`,
      `UPDATE ${s}.incident_updates SET system = true, public = false WHERE message LIKE 'Runbook "%' AND incident_id IN (SELECT id FROM ${s}.incidents WHERE runbook_run_id IS NOT NULL)`,
    ],
  },
  {
    // Update reminders sent (remindIncidents): one row per incident and due
    // time (ms since the epoch), claimed before sending so that a restarted
    // daemon or a second process does not send the same reminder again.
    version: 202,
    name: 'incident reminders',
    sqlite: [`CREATE TABLE incident_reminders (incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE, due_ms INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (incident_id, due_ms))`],
    postgres: (s) => [`CREATE TABLE ${s}.incident_reminders (incident_id BIGINT NOT NULL REFERENCES ${s}.incidents(id) ON DELETE CASCADE, due_ms BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL, PRIMARY KEY (incident_id, due_ms))`],
  },
];

export function formatElapsed(ms: number): string {
  const m = Math.max(0, Math.floor(ms / 60_000));
  if (m < 1) return `${Math.max(0, Math.round(ms / 1000))}s`;
  const d = Math.floor(m / 1440);
  const h = Math.floor((m % 1440) / 60);
  const mm = m % 60;
  return `${d ? d + 'd' : ''}${h ? h + 'h' : ''}${mm || (!d && !h) ? mm + 'm' : ''}`;
}

export interface IncidentStoreOptions {
  /** With the config: notify incidents.channels on create / update / resolve. */
  config?: LifeboatConfig;
  /** Default true when a config is given. */
  notify?: boolean;
  log?: (m: string) => void;
  now?: () => Date;
  /** Backoff sleep for deliveries (tests). */
  sleep?: (ms: number) => Promise<void>;
}

export class IncidentStore {
  private ready: Promise<void> | undefined;
  private readonly now: () => Date;

  constructor(
    readonly catalog: Catalog,
    private readonly opts: IncidentStoreOptions = {},
  ) {
    this.now = opts.now ?? (() => new Date());
  }

  private async init(): Promise<void> {
    this.ready ??= this.catalog.ensureMigrations(INCIDENT_MIGRATIONS);
    await this.ready;
  }

  private get sql() {
    return this.catalog.sql;
  }

  /**
   * Open an incident. Visibility defaults to private: only an operator's
   * explicit choice (`visibility: 'public'`, e.g. `incident open`, or a
   * runbook's `incident.publish`) puts it on the status page. `system: true`
   * marks the first update as written by Lifeboat (never public).
   */
  async create(i: {
    title: string;
    impact: IncidentImpact;
    services: string[];
    message?: string;
    author?: string;
    runbookRunId?: number;
    startedAt?: Date;
    status?: IncidentStatus;
    visibility?: IncidentVisibility;
    publicTitle?: string;
    system?: boolean;
    /** incidents.audiences to tell as well (each with its own channels and template). */
    audiences?: string[];
  }): Promise<Incident> {
    await this.init();
    this.checkAudiences(i.audiences);
    if (!i.title.trim()) throw new LifeboatError('incident title must not be empty', 2);
    if (!INCIDENT_IMPACTS.includes(i.impact)) throw new LifeboatError(`invalid impact "${i.impact}" (use ${INCIDENT_IMPACTS.join(', ')})`, 2);
    const status = i.status ?? 'investigating';
    if (status === 'resolved') throw new LifeboatError('a new incident cannot be resolved already', 2);
    const at = i.startedAt ?? this.now();
    const t = this.sql.t.bind(this.sql);
    const visibility = i.visibility ?? 'private';
    if (!INCIDENT_VISIBILITIES.includes(visibility)) throw new LifeboatError(`invalid visibility "${visibility}" (use public or private)`, 2);
    const id = await this.sql.insertId(
      `INSERT INTO ${t('incidents')} (title, status, impact, services, started_at, runbook_run_id, visibility, public_title) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      [cut(i.title, 500), status, i.impact, JSON.stringify(i.services), at, i.runbookRunId ?? null, visibility, i.publicTitle?.trim() ? cut(i.publicTitle.trim(), 500) : null],
    );
    await this.sql.exec(`INSERT INTO ${t('incident_updates')} (incident_id, at, status, message, author, public, system) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
      id,
      at,
      status,
      cut(i.message ?? `Incident opened: ${i.title}`),
      i.author ?? null,
      !i.system,
      i.system === true,
    ]);
    const inc = (await this.get(id))!;
    await this.communicate(inc, 'start', inc.updates[0]!.message, {}, i.audiences);
    return (await this.get(id))!;
  }

  async get(id: number): Promise<Incident | undefined> {
    await this.init();
    const t = this.sql.t.bind(this.sql);
    const rows = await this.sql.all(`SELECT * FROM ${t('incidents')} WHERE id = ?`, [id]);
    if (!rows[0]) return undefined;
    const updates = await this.sql.all(`SELECT * FROM ${t('incident_updates')} WHERE incident_id = ? ORDER BY at, id`, [id]);
    const events = await this.sql.all(`SELECT * FROM ${t('incident_events')} WHERE incident_id = ? ORDER BY at, id`, [id]);
    return this.fromRows(rows[0], updates, events);
  }

  async list(filter: { open?: boolean; limit?: number; since?: Date; visibility?: IncidentVisibility } = {}): Promise<Incident[]> {
    await this.init();
    const t = this.sql.t.bind(this.sql);
    const where: string[] = [];
    const params: Array<string | number | Date> = [];
    if (filter.open === true) where.push(`status <> 'resolved'`);
    if (filter.open === false) where.push(`status = 'resolved'`);
    if (filter.visibility) {
      where.push('visibility = ?');
      params.push(filter.visibility === 'public' ? 'public' : 'private');
    }
    if (filter.since) {
      where.push('started_at >= ?');
      params.push(filter.since);
    }
    let q = `SELECT id FROM ${t('incidents')}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY started_at DESC, id DESC`;
    if (filter.limit !== undefined) {
      q += ' LIMIT ?';
      params.push(filter.limit);
    }
    const out: Incident[] = [];
    for (const r of await this.sql.all(q, params)) out.push((await this.get(Number(r.id)))!);
    return out;
  }

  /**
   * The time spans of incidents that overlap [from, to) (open ones run until
   * now): what availability is computed from. Only id, impact, services and
   * times; at most `limit` (default 10000), newest first.
   */
  async spans(f: { from: Date; to: Date; visibility?: IncidentVisibility; limit?: number }): Promise<IncidentSpan[]> {
    await this.init();
    const t = this.sql.t.bind(this.sql);
    const params: Array<string | number | Date> = [f.to, f.from];
    let q = `SELECT id, impact, services, started_at, resolved_at FROM ${t('incidents')} WHERE started_at < ? AND (resolved_at IS NULL OR resolved_at > ?)`;
    if (f.visibility) {
      q += ' AND visibility = ?';
      params.push(f.visibility === 'public' ? 'public' : 'private');
    }
    q += ' ORDER BY started_at DESC, id DESC LIMIT ?';
    params.push(Math.max(1, Math.min(f.limit ?? 10_000, 100_000)));
    return (await this.sql.all(q, params)).map((r) => {
      let services: string[] = [];
      try {
        const v = JSON.parse(String(r.services)) as unknown;
        if (Array.isArray(v)) services = v.filter((x): x is string => typeof x === 'string');
      } catch {
        services = [];
      }
      return { id: Number(r.id), impact: r.impact as IncidentImpact, services, startedAt: this.sql.toDate(r.started_at)!, resolvedAt: this.sql.toDate(r.resolved_at) };
    });
  }

  private async must(id: number): Promise<Incident> {
    const i = await this.get(id);
    if (!i) throw new LifeboatError(`no incident #${id}`, 2);
    return i;
  }

  /** `system: true`: written by Lifeboat (never public, still notified to the internal channels). */
  async addUpdate(id: number, u: { status?: IncidentStatus; message: string; author?: string; public?: boolean; notify?: boolean; system?: boolean; audiences?: string[] }): Promise<Incident> {
    await this.init();
    this.checkAudiences(u.audiences);
    if (u.audiences?.length && (u.public === false || u.system)) throw new LifeboatError('an internal update cannot be sent to audiences (drop --internal or --audience)', 2);
    const cur = await this.must(id);
    if (u.status && !INCIDENT_STATUSES.includes(u.status)) throw new LifeboatError(`invalid status "${u.status}" (use ${INCIDENT_STATUSES.join(', ')})`, 2);
    if (u.status === 'resolved')
      return this.resolve(id, { message: u.message, ...(u.author ? { author: u.author } : {}), ...(u.public === false ? { public: false } : {}), ...(u.system ? { system: true } : {}), ...(u.audiences ? { audiences: u.audiences } : {}) });
    if (!u.message.trim()) throw new LifeboatError('an incident update needs a message', 2);
    const at = this.now();
    const t = this.sql.t.bind(this.sql);
    await this.sql.exec(`INSERT INTO ${t('incident_updates')} (incident_id, at, status, message, author, public, system) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
      id,
      at,
      u.status ?? null,
      cut(u.message),
      u.author ?? null,
      u.system ? false : (u.public ?? true),
      u.system === true,
    ]);
    if (u.status && u.status !== cur.status) {
      // reopening a resolved incident clears resolved_at
      await this.sql.exec(`UPDATE ${t('incidents')} SET status = ?, resolved_at = NULL WHERE id = ?`, [u.status, id]);
    }
    const inc = (await this.get(id))!;
    if ((u.public !== false || u.system) && u.notify !== false) await this.communicate(inc, 'update', u.message, {}, u.audiences);
    return (await this.get(id))!;
  }

  async resolve(id: number, u: { message: string; author?: string; public?: boolean; system?: boolean; audiences?: string[] }): Promise<Incident> {
    await this.init();
    this.checkAudiences(u.audiences);
    const cur = await this.must(id);
    if (cur.status === 'resolved') throw new LifeboatError(`incident #${id} is already resolved (${cur.resolvedAt?.toISOString()})`, 2);
    const at = this.now();
    const t = this.sql.t.bind(this.sql);
    await this.sql.exec(`INSERT INTO ${t('incident_updates')} (incident_id, at, status, message, author, public, system) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
      id,
      at,
      'resolved',
      cut(u.message || 'Resolved.'),
      u.author ?? null,
      u.system ? false : (u.public ?? true),
      u.system === true,
    ]);
    await this.sql.exec(`UPDATE ${t('incidents')} SET status = 'resolved', resolved_at = ? WHERE id = ?`, [at, id]);
    const inc = (await this.get(id))!;
    await this.communicate(inc, 'resolved', u.message || 'Resolved.', {}, u.audiences);
    return (await this.get(id))!;
  }

  /**
   * Put an incident on the status page (an explicit operator action). With a
   * message, that text is posted as a public update first; with a title, it
   * becomes the public headline. Timeline events and internal or system
   * updates stay private.
   */
  async publish(id: number, p: { message?: string; title?: string; author?: string } = {}): Promise<Incident> {
    await this.init();
    await this.must(id);
    const t = this.sql.t.bind(this.sql);
    if (p.message !== undefined && !p.message.trim()) throw new LifeboatError('the public message must not be empty', 2);
    if (p.title !== undefined && !p.title.trim()) throw new LifeboatError('the public title must not be empty', 2);
    if (p.title !== undefined) await this.sql.exec(`UPDATE ${t('incidents')} SET public_title = ? WHERE id = ?`, [cut(p.title.trim(), 500), id]);
    if (p.message !== undefined) {
      await this.sql.exec(`INSERT INTO ${t('incident_updates')} (incident_id, at, status, message, author, public, system) VALUES (?, ?, ?, ?, ?, ?, ?)`, [id, this.now(), null, cut(p.message.trim()), p.author ?? null, true, false]);
    }
    await this.sql.exec(`UPDATE ${t('incidents')} SET visibility = 'public' WHERE id = ?`, [id]);
    await this.addEvent(id, 'visibility', `published on the status page${p.author ? ` by ${p.author}` : ''}`);
    return (await this.get(id))!;
  }

  /** Take an incident off the status page (its updates are kept, internal). */
  async unpublish(id: number, p: { author?: string } = {}): Promise<Incident> {
    await this.init();
    await this.must(id);
    await this.sql.exec(`UPDATE ${this.sql.t('incidents')} SET visibility = 'private' WHERE id = ?`, [id]);
    await this.addEvent(id, 'visibility', `removed from the status page${p.author ? ` by ${p.author}` : ''}`);
    return (await this.get(id))!;
  }

  async setPostmortem(id: number, p: { rootCause?: string; lessonsLearned?: string; actionItems?: string[]; summary?: string }): Promise<Incident> {
    await this.init();
    await this.must(id);
    const sets: string[] = [];
    const params: Array<string | number> = [];
    const add = (col: string, v: string | undefined) => {
      if (v === undefined) return;
      sets.push(`${col} = ?`);
      params.push(cut(v, 65536));
    };
    add('root_cause', p.rootCause);
    add('lessons_learned', p.lessonsLearned);
    add('summary', p.summary);
    if (p.actionItems !== undefined) add('action_items', JSON.stringify(p.actionItems.map((a) => cut(a, 2000))));
    if (sets.length) await this.sql.exec(`UPDATE ${this.sql.t('incidents')} SET ${sets.join(', ')} WHERE id = ?`, [...params, id]);
    return (await this.get(id))!;
  }

  /** Append a timeline event (runbook steps, notifications). Text is redacted and truncated. */
  async addEvent(id: number, kind: string, text: string, at?: Date): Promise<void> {
    await this.init();
    await this.sql.exec(`INSERT INTO ${this.sql.t('incident_events')} (incident_id, at, kind, text) VALUES (?, ?, ?, ?)`, [id, at ?? this.now(), kind, cut(redactText(text))]);
  }

  /** Link a runbook run to an incident (set once the run exists). */
  async linkRun(id: number, runId: number): Promise<void> {
    await this.init();
    await this.sql.exec(`UPDATE ${this.sql.t('incidents')} SET runbook_run_id = ? WHERE id = ?`, [runId, id]);
  }

  /** Unknown audience names are a usage error (exit 2), checked before anything is written. */
  private checkAudiences(audiences: string[] | undefined): void {
    if (!audiences?.length) return;
    const cfg = this.opts.config;
    const known = Object.keys((cfg && incidentsConfig(cfg)?.audiences) ?? {});
    const unknown = audiences.filter((a) => !known.includes(a));
    if (unknown.length) throw new LifeboatError(`unknown audience(s) ${unknown.map((a) => `"${a}"`).join(', ')} (defined in incidents.audiences: ${known.join(', ') || 'none'})`, 2);
  }

  /**
   * Notify incidents.channels (if configured and `notifyOn` includes the
   * event), then each targeted audience through its own channels with its own
   * template, and record every delivery on the timeline.
   */
  async communicate(inc: Incident, event: 'start' | 'update' | 'resolved', message: string, extra: Record<string, string> = {}, audiences: string[] = []): Promise<DeliveryResult[]> {
    const cfg = this.opts.config;
    if (!cfg || this.opts.notify === false) return [];
    const ic = incidentsConfig(cfg);
    if (!ic) return [];
    const all: DeliveryResult[] = [];
    const record = async (results: DeliveryResult[], who: string) => {
      for (const r of results) {
        await this.addEvent(inc.id, 'notification', `${event} notification${who} to ${r.channel}: ${r.ok ? 'delivered' : `FAILED after ${r.attempts} attempt(s): ${r.error}`}`);
        if (!r.ok) this.opts.log?.(`incident #${inc.id}: ${event} notification${who} to ${r.channel} failed: ${r.error}`);
      }
      all.push(...results);
    };
    if (ic.notifyOn.includes(event) && ic.channels.length > 0) {
      const tpl = { ...DEFAULT_INCIDENT_TEMPLATES[event], ...(ic.templates[event] ?? {}) };
      await record(await sendIncidentMessage(cfg, ic.channels, inc, event, tpl, { message, ...extra }, this.now(), this.opts.sleep), '');
    }
    for (const name of [...new Set(audiences)]) {
      const a = ic.audiences[name];
      if (!a) continue; // checked before writing (checkAudiences)
      const tpl = { ...DEFAULT_INCIDENT_TEMPLATES[event], ...(ic.templates[event] ?? {}), ...(a.templates[event] ?? {}) };
      await record(await sendIncidentMessage(cfg, a.channels, inc, event, tpl, { message, ...extra, audience: name }, this.now(), this.opts.sleep, `/${name}`), ` (audience ${name})`);
    }
    return all;
  }

  private fromRows(r: SqlRow, updates: SqlRow[], events: SqlRow[]): Incident {
    const sql = this.sql;
    const ups: IncidentUpdate[] = updates.map((u) => ({
      id: Number(u.id),
      at: sql.toDate(u.at)!,
      status: (u.status as IncidentStatus | null) ?? null,
      message: String(u.message),
      author: (u.author as string | null) ?? null,
      public: Boolean(u.public) && !u.system,
      system: Boolean(u.system),
    }));
    const timeline: Incident['timeline'] = [
      ...ups.map((u) => ({ at: u.at, kind: u.status ? `status:${u.status}` : 'update', text: `${u.message}${u.author ? ` (${u.author})` : ''}${u.system ? ' [system]' : u.public ? '' : ' [internal]'}`, order: 0, id: u.id })),
      ...events.map((e) => ({ at: sql.toDate(e.at)!, kind: String(e.kind), text: String(e.text), order: 1, id: Number(e.id) })),
    ]
      .sort((a, b) => a.at.getTime() - b.at.getTime() || a.order - b.order || a.id - b.id)
      .map(({ at, kind, text }) => ({ at, kind, text }));
    return {
      id: Number(r.id),
      title: String(r.title),
      status: r.status as IncidentStatus,
      impact: r.impact as IncidentImpact,
      services: JSON.parse(String(r.services)) as string[],
      startedAt: sql.toDate(r.started_at)!,
      resolvedAt: sql.toDate(r.resolved_at),
      runbookRunId: r.runbook_run_id === null || r.runbook_run_id === undefined ? null : Number(r.runbook_run_id),
      visibility: r.visibility === 'public' ? 'public' : 'private',
      publicTitle: r.public_title === null || r.public_title === undefined ? null : String(r.public_title),
      summary: String(r.summary ?? ''),
      rootCause: String(r.root_cause ?? ''),
      lessonsLearned: String(r.lessons_learned ?? ''),
      actionItems: JSON.parse(String(r.action_items ?? '[]')) as string[],
      updates: ups,
      timeline,
    };
  }
}

/** The validated `incidents:` block (undefined when absent); channel names are checked against notifiers.channels. */
export function incidentsConfig(cfg: LifeboatConfig): IncidentsConfig | undefined {
  if (cfg.incidents === undefined) return undefined;
  const r = incidentsConfigSchema.safeParse(cfg.incidents);
  if (!r.success) throw new ConfigError(`invalid incidents configuration: ${r.error.issues.map((i) => `incidents.${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const channels = Object.keys((cfg.notifiers as { channels?: Record<string, unknown> } | undefined)?.channels ?? {});
  const problems = checkIncidentChannels(r.data, channels);
  if (problems.length) throw new ConfigError(`${cfg.file}: ${problems.join('; ')}`);
  return r.data;
}

const notifierCache = new WeakMap<LifeboatConfig, Map<string, Notifier>>();

/** The configured notifiers (built once per loaded config). */
export function configNotifiers(cfg: LifeboatConfig): Map<string, Notifier> {
  let m = notifierCache.get(cfg);
  if (!m) {
    m = cfg.notifiers ? createNotifiers(parseNotifiersConfig(cfg.notifiers), { baseDir: cfg.dir }) : new Map();
    notifierCache.set(cfg, m);
  }
  return m;
}

export function incidentVars(inc: Incident, event: IncidentEvent, now: Date, extra: Record<string, string> = {}): Record<string, string> {
  return {
    incident: String(inc.id),
    title: inc.title,
    status: inc.status,
    STATUS: inc.status.toUpperCase(),
    impact: inc.impact,
    services: inc.services.join(', ') || 'none',
    message: inc.updates[inc.updates.length - 1]?.message ?? '',
    event,
    runbook: '',
    run: inc.runbookRunId === null ? '' : String(inc.runbookRunId),
    step: '',
    startedAt: inc.startedAt.toISOString(),
    at: now.toISOString(),
    elapsed: formatElapsed((inc.resolvedAt ?? now).getTime() - inc.startedAt.getTime()),
    level: '',
    host: hostname(),
    audience: '',
    sinceUpdate: '',
    every: '',
    ...extra,
  };
}

/** Render and deliver one incident message to channels (never throws for delivery failures). */
export async function sendIncidentMessage(
  cfg: LifeboatConfig,
  channels: string[],
  inc: Incident,
  event: IncidentEvent,
  tpl: { title: string; text: string },
  extra: Record<string, string>,
  now: Date,
  sleep?: (ms: number) => Promise<void>,
  keySuffix = '',
): Promise<DeliveryResult[]> {
  const notifiers = configNotifiers(cfg);
  const vars = incidentVars(inc, event, now, extra);
  const title = renderIncidentTemplate(tpl.title, vars).replace(/[\r\n]+/g, ' ').trim();
  const text = renderIncidentTemplate(tpl.text, vars);
  const msg: AlertMessage = {
    kind: event === 'resolved' ? 'resolved' : 'firing',
    key: `incident/${inc.id}${keySuffix}`,
    job: inc.services.join(',') || 'incident',
    check: 'incident',
    severity: inc.impact === 'critical' || inc.impact === 'major' ? 'critical' : inc.impact === 'minor' ? 'warning' : 'ok',
    tier: 'critical',
    title,
    text,
    message: vars.message!,
    details: { incident: inc.id, event, status: inc.status, impact: inc.impact, services: inc.services, runbookRunId: inc.runbookRunId, ...(vars.level ? { level: Number(vars.level) } : {}) },
    firstAt: inc.startedAt,
    at: now,
    count: 1,
    host: vars.host!,
  };
  const out: DeliveryResult[] = [];
  for (const c of channels) {
    const n = notifiers.get(c);
    if (!n) {
      out.push({ channel: c, ok: false, attempts: 0, error: `unknown notifier channel "${c}"` });
      continue;
    }
    out.push(await deliver(n, msg, sleep ? { sleep } : {}));
  }
  return out;
}

export interface EscalationSent {
  incidentId: number;
  level: number;
  channels: string[];
  results: DeliveryResult[];
}

/**
 * Escalate open incidents: for every `incidents.escalation` level whose
 * `after` has elapsed since the incident started and that was not sent yet,
 * notify its channels. Safe to call often and from several processes: a level
 * is claimed in the catalog (incident_escalations) before it is sent, and the
 * claim is released if no channel accepted the message so the next call
 * retries. The daemon calls this every minute.
 */
export async function escalateIncidents(cfg: LifeboatConfig, catalog: Catalog, now: Date = new Date(), opts: { log?: (m: string) => void; sleep?: (ms: number) => Promise<void> } = {}): Promise<EscalationSent[]> {
  const ic = incidentsConfig(cfg);
  if (!ic || ic.escalation.length === 0) return [];
  const store = new IncidentStore(catalog, { notify: false, now: () => now });
  const sent: EscalationSent[] = [];
  const sql = catalog.sql;
  for (const inc of await store.list({ open: true })) {
    const elapsed = now.getTime() - inc.startedAt.getTime();
    for (const [i, level] of ic.escalation.entries()) {
      if (elapsed < parseDuration(level.after)) continue;
      if (level.impact && !level.impact.includes(inc.impact)) continue;
      let claimed = 0;
      try {
        claimed = await sql.exec(`INSERT INTO ${sql.t('incident_escalations')} (incident_id, level, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, [inc.id, i + 1, now]);
      } catch (err) {
        throw new LifeboatError(`escalation of incident #${inc.id}: ${errorMessage(err)}`);
      }
      if (claimed === 0) continue;
      const tpl = { ...DEFAULT_INCIDENT_TEMPLATES.escalation, ...(ic.templates.escalation ?? {}), ...(level.template ?? {}) };
      const results = await sendIncidentMessage(cfg, level.channels, inc, 'escalation', tpl, { level: String(i + 1) }, now, opts.sleep);
      for (const r of results) {
        await store.addEvent(inc.id, 'escalation', `escalation level ${i + 1} (after ${level.after}) to ${r.channel}: ${r.ok ? 'delivered' : `FAILED: ${r.error}`}`, now);
      }
      if (!results.some((r) => r.ok)) {
        await sql.exec(`DELETE FROM ${sql.t('incident_escalations')} WHERE incident_id = ? AND level = ?`, [inc.id, i + 1]);
        opts.log?.(`incident #${inc.id}: escalation level ${i + 1} not delivered; will retry`);
      }
      sent.push({ incidentId: inc.id, level: i + 1, channels: level.channels, results });
    }
  }
  return sent;
}

export interface ReminderSent {
  incidentId: number;
  /** When the reminder became due: the last operator update + k × the interval. */
  dueAt: Date;
  channels: string[];
  results: DeliveryResult[];
}

/** The time of the last public operator update (or the start): what update reminders are measured from. */
export function lastUpdateAt(inc: Incident): Date {
  let t = inc.startedAt.getTime();
  for (const u of inc.updates) if (u.public && !u.system && u.at.getTime() > t) t = u.at.getTime();
  return new Date(t);
}

/**
 * Update reminders: while an incident is open, remind the responders
 * (`incidents.reminders.channels`, default `incidents.channels`) to post an
 * update when none was posted for the interval of its impact
 * (`incidents.reminders.every`, default critical 15m, major 30m, minor 60m,
 * none off), measured from the last public operator update (or the start).
 * Without a new update, it reminds again every interval; a backlog is never
 * sent (only the latest due reminder). Each reminder is claimed in the
 * catalog (incident_reminders: incident, due time) before it is sent, so a
 * restarted daemon or a second process does not send it again; the claim is
 * released when no channel accepted it, so the next call retries. The daemon
 * calls this every minute.
 */
export async function remindIncidents(cfg: LifeboatConfig, catalog: Catalog, now: Date = new Date(), opts: { log?: (m: string) => void; sleep?: (ms: number) => Promise<void> } = {}): Promise<ReminderSent[]> {
  const ic = incidentsConfig(cfg);
  if (!ic) return [];
  const channels = ic.reminders.channels ?? ic.channels;
  if (channels.length === 0) return [];
  const store = new IncidentStore(catalog, { notify: false, now: () => now });
  const sql = catalog.sql;
  const sent: ReminderSent[] = [];
  for (const inc of await store.list({ open: true, limit: 1000 })) {
    const every = ic.reminders.every[inc.impact];
    if (every === 'off') continue;
    const interval = parseDuration(every);
    if (!(interval > 0)) continue;
    const base = lastUpdateAt(inc).getTime();
    const k = Math.floor((now.getTime() - base) / interval);
    if (k < 1) continue;
    const due = base + k * interval;
    let claimed = 0;
    try {
      claimed = await sql.exec(`INSERT INTO ${sql.t('incident_reminders')} (incident_id, due_ms, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, [inc.id, due, now]);
    } catch (err) {
      throw new LifeboatError(`update reminder for incident #${inc.id}: ${errorMessage(err)}`);
    }
    if (claimed === 0) continue;
    const tpl = { ...DEFAULT_INCIDENT_TEMPLATES.reminder, ...(ic.reminders.template ?? {}) };
    const sinceUpdate = formatElapsed(now.getTime() - base);
    const results = await sendIncidentMessage(cfg, channels, inc, 'reminder', tpl, { sinceUpdate, every: formatElapsed(interval) }, now, opts.sleep, '/reminder');
    for (const r of results) {
      await store.addEvent(inc.id, 'reminder', `update reminder (no update for ${sinceUpdate}, every ${every}) to ${r.channel}: ${r.ok ? 'delivered' : `FAILED: ${r.error}`}`, now);
    }
    if (!results.some((r) => r.ok)) {
      await sql.exec(`DELETE FROM ${sql.t('incident_reminders')} WHERE incident_id = ? AND due_ms = ?`, [inc.id, due]);
      opts.log?.(`incident #${inc.id}: update reminder not delivered; will retry`);
    }
    sent.push({ incidentId: inc.id, dueAt: new Date(due), channels, results });
  }
  return sent;
}

// ------------------------------------------------------------------ reports

const fmt = (d: Date | null) => (d ? d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');

function mdEscape(s: string): string {
  return s.replace(/([\\`*_[\]<>|])/g, '\\$1');
}

export function renderIncidentMarkdown(i: Incident): string {
  const dur = formatElapsed((i.resolvedAt ?? new Date()).getTime() - i.startedAt.getTime());
  const lines: string[] = [];
  lines.push(`# Incident #${i.id}: ${mdEscape(i.title)}`, '');
  lines.push(`- **Status:** ${i.status}`);
  lines.push(`- **Impact:** ${i.impact}`);
  lines.push(`- **Status page:** ${i.visibility === 'public' ? `public${i.publicTitle ? ` (as "${mdEscape(i.publicTitle)}")` : ''}` : 'private (not shown)'}`);
  lines.push(`- **Affected services:** ${i.services.length ? i.services.map(mdEscape).join(', ') : 'none'}`);
  lines.push(`- **Started:** ${fmt(i.startedAt)}`);
  lines.push(`- **Resolved:** ${fmt(i.resolvedAt)}`);
  lines.push(`- **Duration:** ${dur}${i.resolvedAt ? '' : ' (still open)'}`);
  if (i.runbookRunId !== null) lines.push(`- **Runbook run:** #${i.runbookRunId}`);
  lines.push('', '## Summary', '', i.summary ? mdEscape(i.summary) : '_not written yet_');
  lines.push('', '## Root cause', '', i.rootCause ? mdEscape(i.rootCause) : '_not written yet_');
  lines.push('', '## Lessons learned', '', i.lessonsLearned ? mdEscape(i.lessonsLearned) : '_not written yet_');
  lines.push('', '## Action items', '');
  if (i.actionItems.length) for (const a of i.actionItems) lines.push(`- [ ] ${mdEscape(a)}`);
  else lines.push('_none_');
  lines.push('', '## Timeline', '', '| Time (UTC) | Event | Details |', '|---|---|---|');
  for (const e of i.timeline) lines.push(`| ${fmt(e.at)} | ${mdEscape(e.kind)} | ${mdEscape(e.text).replace(/\r?\n/g, '<br>')} |`);
  lines.push('');
  return lines.join('\n');
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

export function renderIncidentHtml(i: Incident): string {
  const e = escapeHtml;
  const dur = formatElapsed((i.resolvedAt ?? new Date()).getTime() - i.startedAt.getTime());
  const para = (s: string) => (s ? `<p>${e(s).replace(/\r?\n/g, '<br>')}</p>` : '<p class="muted">not written yet</p>');
  const rows = i.timeline
    .map((t) => `<tr class="k-${e(t.kind.replace(/[^a-z0-9-]/gi, '-'))}"><td>${e(fmt(t.at))}</td><td>${e(t.kind)}</td><td><pre>${e(t.text)}</pre></td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Incident #${i.id}: ${e(i.title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3rem .5rem;vertical-align:top;text-align:left}
pre{margin:0;white-space:pre-wrap;font-size:.85rem}.muted{color:#888;font-style:italic}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;background:#eee}.impact-critical,.impact-major{background:#fdd}.status-resolved{background:#dfd}
</style></head><body>
<h1>Incident #${i.id}: ${e(i.title)}</h1>
<p><span class="badge status-${e(i.status)}">${e(i.status)}</span> <span class="badge impact-${e(i.impact)}">impact: ${e(i.impact)}</span></p>
<table>
<tr><th>Affected services</th><td>${e(i.services.join(', ') || 'none')}</td></tr>
<tr><th>Started</th><td>${e(fmt(i.startedAt))}</td></tr>
<tr><th>Resolved</th><td>${e(fmt(i.resolvedAt))}</td></tr>
<tr><th>Duration</th><td>${e(dur)}${i.resolvedAt ? '' : ' (still open)'}</td></tr>
${i.runbookRunId !== null ? `<tr><th>Runbook run</th><td>#${i.runbookRunId}</td></tr>` : ''}
</table>
<h2>Summary</h2>${para(i.summary)}
<h2>Root cause</h2>${para(i.rootCause)}
<h2>Lessons learned</h2>${para(i.lessonsLearned)}
<h2>Action items</h2>${i.actionItems.length ? `<ul>${i.actionItems.map((a) => `<li>${e(a)}</li>`).join('')}</ul>` : '<p class="muted">none</p>'}
<h2>Timeline</h2>
<table><thead><tr><th>Time (UTC)</th><th>Event</th><th>Details</th></tr></thead><tbody>
${rows}
</tbody></table>
</body></html>
`;
}
