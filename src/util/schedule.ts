import cronstrue from 'cronstrue';
import { Cron } from 'croner';

/**
 * A cron schedule in words and its next run, the way Healthchecks shows
 * "next expected": `every 15 minutes, next 10:15 UTC`. The daemon runs cron
 * expressions in the process's time zone (croner's default); the zone is
 * named so a reader never has to guess.
 */
export interface ScheduleInfo {
  expression: string;
  text: string;
  timeZone: string;
  next: string | null;
}

export function processTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export function describeSchedule(expression: string, now: Date = new Date()): ScheduleInfo {
  const timeZone = processTimeZone();
  let text: string;
  try {
    text = cronstrue.toString(expression, { use24HourTimeFormat: true, verbose: false });
  } catch {
    text = expression;
  }
  let next: string | null = null;
  try {
    next = new Cron(expression, { paused: true }).nextRun(now)?.toISOString() ?? null;
  } catch {
    next = null;
  }
  return { expression, text: `${text} (${timeZone})`, timeZone, next };
}
