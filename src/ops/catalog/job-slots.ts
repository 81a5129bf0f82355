import { LifeboatError, errorMessage } from '../../errors.js';
import type { SqlAccess, SqlParam } from './types.js';

/**
 * Claims of scheduled slots of `runOn: any` jobs in the shared PostgreSQL
 * catalog (table job_slots, migration 6). A slot is one fire time of a job's
 * schedule (UTC); its row is the claim:
 *
 *   claim     INSERT ... ON CONFLICT DO NOTHING: the first agent wins, every
 *             other agent sees the row and does not run the slot.
 *   renew     the holder moves lease_until forward (WHERE agent_id = me AND
 *             not finished); 0 rows means another agent took the slot over.
 *   finish    the holder sets finished_at and result: never run again.
 *   release   the holder gives an unfinished slot back (lease_until = now())
 *             when it shuts down, so another agent takes it over at once.
 *   takeOver  one atomic UPDATE of an unfinished slot whose lease expired
 *             (row locked with FOR UPDATE SKIP LOCKED, conditions re-checked
 *             on the locked row): exactly one agent gets it.
 *
 * Leases use the database clock (now()), so agents' clocks need not agree.
 * Every call has a deadline (`deadlineMs`) on top of the pool's query
 * timeout: a call that misses it throws, and the caller treats the outcome as
 * unknown (a claim that did commit is taken over after its lease).
 */

export interface SlotRow {
  job: string;
  slot: Date;
  agentId: string;
  claimedAt: Date;
  leaseUntil: Date;
  finishedAt: Date | null;
  result: string | null;
  takeovers: number;
  takenOverAt: Date | null;
  previousAgent: string | null;
}

export interface TakenOver {
  job: string;
  slot: Date;
  /** The agent whose lease expired. */
  previousAgent: string;
  /** When that lease expired (database clock). */
  expiredAt: Date;
  /** When this agent took it over (database clock). */
  takenOverAt: Date;
}

export interface JobSlotsOptions {
  leaseMs: number;
  /** Deadline of one catalog call (default: a quarter of the lease, at most 10 s). */
  deadlineMs?: number;
}

/** Claim statistics since the last takeStats() (the daemon logs them; the fleet bench reads them). */
export interface SlotStats {
  claims: number;
  won: number;
  takeovers: number;
  queries: number;
  errors: number;
  claimMs: number[];
}

export class JobSlots {
  readonly leaseMs: number;
  readonly deadlineMs: number;
  private stats: SlotStats = emptyStats();

  constructor(
    private readonly sql: SqlAccess,
    /** This agent's id, stored in the rows it claims. */
    readonly agentId: string,
    opts: JobSlotsOptions,
  ) {
    if (sql.backend !== 'postgres') throw new LifeboatError('runOn: any needs a PostgreSQL catalog shared by the agents');
    this.leaseMs = opts.leaseMs;
    this.deadlineMs = opts.deadlineMs ?? Math.min(10_000, Math.max(250, Math.floor(opts.leaseMs / 4)));
  }

  private get table(): string {
    return this.sql.t('job_slots');
  }

  private leaseSeconds(): number {
    return this.leaseMs / 1000;
  }

  /** Run one statement with this module's deadline. */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.stats.queries++;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new LifeboatError(`catalog: ${what} got no answer within ${this.deadlineMs} ms`)), this.deadlineMs);
    });
    try {
      return await Promise.race([fn(), deadline]);
    } catch (err) {
      this.stats.errors++;
      throw err instanceof LifeboatError ? err : new LifeboatError(`catalog: ${what}: ${errorMessage(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Claim a slot. true: this agent owns it and must run it; false: another agent claimed it first. */
  async claim(job: string, slot: Date): Promise<boolean> {
    const t0 = performance.now();
    this.stats.claims++;
    const rows = await this.run(`claim of ${job} slot ${slot.toISOString()}`, () =>
      this.sql.all(
        `INSERT INTO ${this.table} (job, slot, agent_id, claimed_at, lease_until, takeovers)
         VALUES (?, ?, ?, now(), now() + make_interval(secs => ?::double precision), 0)
         ON CONFLICT (job, slot) DO NOTHING
         RETURNING job`,
        [job, slot, this.agentId, this.leaseSeconds()],
      ),
    );
    this.stats.claimMs.push(performance.now() - t0);
    if (rows.length === 1) this.stats.won++;
    return rows.length === 1;
  }

  /**
   * After winning a claim: if an earlier slot of the same job is still running
   * on another holder (unfinished, lease live), this slot is not run -- like a
   * single daemon skips a tick while the job is still running -- and is
   * recorded as finished with result "skipped: …" (so it is neither run twice
   * at once nor reported missed). Returns that result, or undefined to run it.
   */
  async skipIfOverlapping(job: string, slot: Date): Promise<string | undefined> {
    const rows = await this.run(`overlap check of ${job} slot ${slot.toISOString()}`, () =>
      this.sql.all(
        `SELECT slot, agent_id FROM ${this.table}
         WHERE job = ? AND slot < ? AND agent_id <> ? AND finished_at IS NULL AND lease_until > now()
         ORDER BY slot DESC LIMIT 1`,
        [job, slot, this.agentId],
      ),
    );
    const r = rows[0];
    if (!r) return undefined;
    const result = `skipped: slot ${this.sql.toDate(r.slot)!.toISOString()} of this job still running on agent ${String(r.agent_id)}`;
    await this.finish(job, slot, result);
    return result;
  }

  /** Extend this agent's lease. false: the slot is no longer this agent's (taken over or finished). */
  async renew(job: string, slot: Date): Promise<boolean> {
    const n = await this.run(`lease renewal of ${job} slot ${slot.toISOString()}`, () =>
      this.sql.exec(
        `UPDATE ${this.table} SET lease_until = now() + make_interval(secs => ?::double precision)
         WHERE job = ? AND slot = ? AND agent_id = ? AND finished_at IS NULL`,
        [this.leaseSeconds(), job, slot, this.agentId],
      ),
    );
    return n === 1;
  }

  /** Record the slot's outcome. false: the slot was not this agent's any more (nothing written). */
  async finish(job: string, slot: Date, result: string): Promise<boolean> {
    const n = await this.run(`finish of ${job} slot ${slot.toISOString()}`, () =>
      this.sql.exec(
        `UPDATE ${this.table} SET finished_at = now(), lease_until = now(), result = ?
         WHERE job = ? AND slot = ? AND agent_id = ? AND finished_at IS NULL`,
        [result.slice(0, 1000), job, slot, this.agentId],
      ),
    );
    return n === 1;
  }

  /** Give an unfinished slot back: its lease ends now and any agent may take it over. */
  async release(job: string, slot: Date): Promise<boolean> {
    const n = await this.run(`release of ${job} slot ${slot.toISOString()}`, () =>
      this.sql.exec(`UPDATE ${this.table} SET lease_until = now() WHERE job = ? AND slot = ? AND agent_id = ? AND finished_at IS NULL`, [
        job,
        slot,
        this.agentId,
      ]),
    );
    return n === 1;
  }

  /**
   * Take over the oldest unfinished slot of one of `jobs` whose lease has
   * expired, if any. The row is locked (SKIP LOCKED: agents scanning at the
   * same time take different rows) and re-checked under the lock, so a slot
   * whose holder renewed in the meantime is never taken.
   */
  async takeOver(jobs: readonly string[]): Promise<TakenOver | undefined> {
    if (jobs.length === 0) return undefined;
    const rows = await this.run('takeover scan', () =>
      this.sql.all(
        `UPDATE ${this.table} s
           SET agent_id = ?, lease_until = now() + make_interval(secs => ?::double precision),
               takeovers = s.takeovers + 1, taken_over_at = now(), previous_agent = s.agent_id
         FROM (SELECT job, slot, lease_until FROM ${this.table}
               WHERE finished_at IS NULL AND lease_until < now() AND job IN (${jobs.map(() => '?').join(', ')})
               ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) old
         WHERE s.job = old.job AND s.slot = old.slot AND s.finished_at IS NULL AND s.lease_until < now()
         RETURNING s.job, s.slot, s.previous_agent, old.lease_until AS expired_at, s.taken_over_at`,
        [this.agentId, this.leaseSeconds(), ...jobs],
      ),
    );
    const r = rows[0];
    if (!r) return undefined;
    this.stats.takeovers++;
    return {
      job: String(r.job),
      slot: this.sql.toDate(r.slot)!,
      previousAgent: String(r.previous_agent),
      expiredAt: this.sql.toDate(r.expired_at)!,
      takenOverAt: this.sql.toDate(r.taken_over_at)!,
    };
  }

  /** Delete finished claims of slots before `before`. Returns how many. */
  async prune(before: Date): Promise<number> {
    return this.run('prune of old slot claims', () => this.sql.exec(`DELETE FROM ${this.table} WHERE finished_at IS NOT NULL AND slot < ?`, [before]));
  }

  /** The oldest claimed slot of each job (when the job first ran under runOn: any, as far as the claims kept go back). */
  async firstSlots(): Promise<Map<string, Date>> {
    const rows = await this.run('first slots', () => this.sql.all(`SELECT job, min(slot) AS first FROM ${this.table} GROUP BY job`, []));
    return new Map(rows.map((r) => [String(r.job), this.sql.toDate(r.first)!]));
  }

  /** Claims of slots in [since, until), oldest first. */
  async list(filter: { job?: string; since?: Date; until?: Date } = {}): Promise<SlotRow[]> {
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (filter.job !== undefined) {
      where.push('job = ?');
      params.push(filter.job);
    }
    if (filter.since) {
      where.push('slot >= ?');
      params.push(filter.since);
    }
    if (filter.until) {
      where.push('slot < ?');
      params.push(filter.until);
    }
    const rows = await this.run('slot listing', () =>
      this.sql.all(`SELECT * FROM ${this.table}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY slot, job`, params),
    );
    const d = (v: unknown) => this.sql.toDate(v);
    return rows.map((r) => ({
      job: String(r.job),
      slot: d(r.slot)!,
      agentId: String(r.agent_id),
      claimedAt: d(r.claimed_at)!,
      leaseUntil: d(r.lease_until)!,
      finishedAt: d(r.finished_at),
      result: (r.result as string | null) ?? null,
      takeovers: Number(r.takeovers),
      takenOverAt: d(r.taken_over_at),
      previousAgent: (r.previous_agent as string | null) ?? null,
    }));
  }

  /** The statistics since the previous call (and reset them). */
  takeStats(): SlotStats {
    const s = this.stats;
    this.stats = emptyStats();
    return s;
  }
}

function emptyStats(): SlotStats {
  return { claims: 0, won: 0, takeovers: 0, queries: 0, errors: 0, claimMs: [] };
}
