import type { Catalog, Migration, SqlRow } from '../ops/catalog/types.js';
import { LifeboatError } from '../errors.js';

/**
 * Planned maintenance windows shown on the status page (catalog migration
 * 303). Not to be confused with the daemon's repository maintenance (prune,
 * check): these announce planned downtime of services to users.
 */

export const MAINTENANCE_MIGRATIONS: readonly Migration[] = [
  {
    version: 303,
    name: 'status page maintenance windows',
    sqlite: [
      `CREATE TABLE server_maintenance_windows (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        services TEXT NOT NULL,
        starts_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        created_by TEXT,
        created_at INTEGER NOT NULL,
        cancelled_at INTEGER
      )`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.server_maintenance_windows (
        id BIGSERIAL PRIMARY KEY,
        title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        services TEXT NOT NULL,
        starts_at TIMESTAMPTZ NOT NULL,
        ends_at TIMESTAMPTZ NOT NULL,
        created_by TEXT,
        created_at TIMESTAMPTZ NOT NULL,
        cancelled_at TIMESTAMPTZ
      )`,
    ],
  },
];

const ZONED_TIME = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?)(Z|[+-]\d\d:?\d\d)$/i;

/**
 * Start and end times of a maintenance window: ISO 8601 with an explicit
 * zone ("2031-01-31T22:00:00Z", "2031-01-31T23:00+01:00"). A time without a
 * zone is rejected rather than guessed: the browser, the CLI and the server
 * may each be in a different time zone.
 */
export function parseZonedTime(s: string, what: string): Date {
  const m = ZONED_TIME.exec(s.trim());
  if (!m) {
    const hint = /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(s.trim()) ? ' has no time zone' : ' is not an ISO 8601 date and time';
    throw new LifeboatError(`${what}: "${s}"${hint} (give the zone explicitly, e.g. 2031-01-31T22:00:00Z or 2031-01-31T23:00:00+01:00)`, 2);
  }
  const zone = m[3]!.toUpperCase() === 'Z' ? 'Z' : m[3]!.length === 5 ? `${m[3]!.slice(0, 3)}:${m[3]!.slice(3)}` : m[3]!;
  const d = new Date(`${m[1]}T${m[2]}${zone}`);
  if (Number.isNaN(d.getTime())) throw new LifeboatError(`${what}: invalid date/time "${s}"`, 2);
  return d;
}

export interface MaintenanceWindow {
  id: number;
  title: string;
  description: string;
  services: string[];
  startsAt: Date;
  endsAt: Date;
  createdBy: string | null;
  createdAt: Date;
  cancelledAt: Date | null;
  /** Derived: scheduled (future), in-progress, completed, cancelled. */
  state: 'scheduled' | 'in-progress' | 'completed' | 'cancelled';
}

export class MaintenanceStore {
  private ready: Promise<void> | undefined;
  constructor(private readonly catalog: Catalog) {}

  private async init(): Promise<void> {
    this.ready ??= this.catalog.ensureMigrations(MAINTENANCE_MIGRATIONS);
    await this.ready;
  }

  private row(r: SqlRow, now: Date): MaintenanceWindow {
    const s = this.catalog.sql;
    const startsAt = s.toDate(r.starts_at)!;
    const endsAt = s.toDate(r.ends_at)!;
    const cancelledAt = s.toDate(r.cancelled_at);
    const t = now.getTime();
    const state = cancelledAt ? 'cancelled' : t < startsAt.getTime() ? 'scheduled' : t < endsAt.getTime() ? 'in-progress' : 'completed';
    return {
      id: Number(r.id),
      title: String(r.title),
      description: String(r.description ?? ''),
      services: JSON.parse(String(r.services)) as string[],
      startsAt,
      endsAt,
      createdBy: (r.created_by as string | null) ?? null,
      createdAt: s.toDate(r.created_at)!,
      cancelledAt,
      state,
    };
  }

  async add(w: { title: string; description?: string; services: string[]; startsAt: Date; endsAt: Date; createdBy?: string }, knownServices?: string[]): Promise<MaintenanceWindow> {
    await this.init();
    if (!w.title.trim()) throw new LifeboatError('maintenance window: title is required', 2);
    if (Number.isNaN(w.startsAt.getTime()) || Number.isNaN(w.endsAt.getTime())) throw new LifeboatError('maintenance window: invalid start or end time', 2);
    if (w.endsAt.getTime() <= w.startsAt.getTime()) throw new LifeboatError('maintenance window: end must be after start', 2);
    if (knownServices) {
      const unknown = w.services.filter((s) => !knownServices.includes(s));
      if (unknown.length) throw new LifeboatError(`maintenance window: unknown service(s) ${unknown.join(', ')} (defined: ${knownServices.join(', ') || 'none'})`, 2);
    }
    const s = this.catalog.sql;
    const id = await s.insertId(
      `INSERT INTO ${s.t('server_maintenance_windows')} (title, description, services, starts_at, ends_at, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [w.title.trim(), w.description ?? '', JSON.stringify(w.services), w.startsAt, w.endsAt, w.createdBy ?? null, new Date()],
    );
    return (await this.get(id))!;
  }

  async get(id: number, now = new Date()): Promise<MaintenanceWindow | undefined> {
    await this.init();
    const s = this.catalog.sql;
    const [r] = await s.all(`SELECT * FROM ${s.t('server_maintenance_windows')} WHERE id = ?`, [id]);
    return r ? this.row(r, now) : undefined;
  }

  /** Newest start first. `current`: not cancelled and not ended. */
  async list(filter: { current?: boolean; since?: Date; now?: Date } = {}): Promise<MaintenanceWindow[]> {
    await this.init();
    const now = filter.now ?? new Date();
    const s = this.catalog.sql;
    const params: Array<Date> = [];
    let where = '';
    if (filter.current) {
      where = ' WHERE cancelled_at IS NULL AND ends_at > ?';
      params.push(now);
    } else if (filter.since) {
      where = ' WHERE ends_at >= ?';
      params.push(filter.since);
    }
    return (await s.all(`SELECT * FROM ${s.t('server_maintenance_windows')}${where} ORDER BY starts_at DESC, id DESC`, params)).map((r) => this.row(r, now));
  }

  async cancel(id: number): Promise<MaintenanceWindow> {
    await this.init();
    const s = this.catalog.sql;
    const n = await s.exec(`UPDATE ${s.t('server_maintenance_windows')} SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL`, [new Date(), id]);
    const w = await this.get(id);
    if (!w) throw new LifeboatError(`no maintenance window ${id}`, 2);
    if (!n) throw new LifeboatError(`maintenance window ${id} is cancelled already`, 2);
    return w;
  }
}
