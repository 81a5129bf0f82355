import { Cron } from 'croner';
import type { SlotRow } from './catalog/job-slots.js';
import type { Tier } from '../config/tiers.js';
import type { Finding } from './monitor.js';

/**
 * What happened to each scheduled slot of the runOn: any jobs in a window:
 * the slots the schedule (UTC) fired, against the claims in the catalog.
 *
 *   done      finished (result success / partial / failed ...; "skipped: …"
 *             when the job's previous slot still ran on another agent)
 *   running   claimed, lease live
 *   orphaned  claimed, lease expired, not finished: its agent died and no
 *             agent has taken it over yet
 *   late      claimed more than `missedAfterMs` after its fire time
 *   missed    no claim at all, `missedAfterMs` after its fire time (every
 *             agent was down or busy with the job)
 *
 * A slot cannot have two claims (primary key job + slot); `takeovers` counts
 * the slots another agent took over from a dead one.
 */

export interface SlotJobReport {
  job: string;
  expected: number;
  done: number;
  running: number;
  orphaned: number;
  late: string[];
  missed: string[];
  takeovers: number;
  failed: number;
  /** Not run because the job's previous slot was still running on another agent. */
  skipped: number;
}

export function expectedSlots(schedule: string, from: Date, to: Date): Date[] {
  const cron = new Cron(schedule, { paused: true, timezone: 'Etc/UTC' });
  const out: Date[] = [];
  // enumerate() yields runs strictly after its start
  for (const d of cron.enumerate(new Date(from.getTime() - 1))) {
    if (d.getTime() >= to.getTime()) break;
    out.push(d);
    if (out.length > 1_000_000) break;
  }
  return out;
}

/**
 * Grade the slots of `jobs` fired in [from, to) against `rows` (their
 * claims); `now` is the database's time (lease expiry).
 */
export function slotReport(
  jobs: ReadonlyArray<{ name: string; schedule: string }>,
  rows: readonly SlotRow[],
  opts: { from: Date; to: Date; now: Date; missedAfterMs: number },
): SlotJobReport[] {
  const byKey = new Map(rows.map((r) => [`${r.job}\u0000${r.slot.getTime()}`, r]));
  return jobs.map(({ name, schedule }) => {
    const rep: SlotJobReport = { job: name, expected: 0, done: 0, running: 0, orphaned: 0, late: [], missed: [], takeovers: 0, failed: 0, skipped: 0 };
    for (const slot of expectedSlots(schedule, opts.from, opts.to)) {
      rep.expected++;
      const r = byKey.get(`${name}\u0000${slot.getTime()}`);
      if (!r) {
        if (opts.now.getTime() - slot.getTime() > opts.missedAfterMs) rep.missed.push(slot.toISOString());
        continue;
      }
      if (r.claimedAt.getTime() - slot.getTime() > opts.missedAfterMs) rep.late.push(slot.toISOString());
      if (r.takeovers > 0) rep.takeovers++;
      if (r.finishedAt) {
        rep.done++;
        if (r.result?.startsWith('skipped:')) rep.skipped++;
        else if (r.result && !/^(success|partial)\b/.test(r.result)) rep.failed++;
      } else if (r.leaseUntil.getTime() < opts.now.getTime()) rep.orphaned++;
      else rep.running++;
    }
    return rep;
  });
}

/** The window the monitor grades slots in: a missed or orphaned slot alerts for this long. */
export const SLOT_ALERT_WINDOW_MS = 24 * 3600_000;

/**
 * The monitor's finding for one runOn: any job: a warning while a slot of the
 * last 24 h ran on no agent (missed) or was left by a dead agent and not taken
 * over (orphaned); ok otherwise (the alert resolves once the window has passed
 * the bad slot, or the orphan is taken over).
 */
export function slotFinding(rep: SlotJobReport, tier: Tier): Finding {
  const bad = rep.missed.length + rep.orphaned;
  const parts: string[] = [];
  if (rep.missed.length) parts.push(`${rep.missed.length} missed (no agent claimed it: ${rep.missed.slice(-3).join(', ')}${rep.missed.length > 3 ? ', …' : ''})`);
  if (rep.orphaned) parts.push(`${rep.orphaned} orphaned (its agent died, not taken over yet)`);
  return {
    job: rep.job,
    check: 'slots',
    tier,
    severity: bad > 0 ? 'warning' : 'ok',
    message: bad > 0 ? `${rep.job}: of ${rep.expected} scheduled slots in the last 24 h, ${parts.join(' and ')}` : `${rep.job}: every scheduled slot in the last 24 h was claimed`,
    details: { expected: rep.expected, done: rep.done, running: rep.running, orphaned: rep.orphaned, missed: rep.missed, late: rep.late, takeovers: rep.takeovers, failed: rep.failed },
  };
}
