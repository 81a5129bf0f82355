import { z } from 'zod';
import { ConfigError, errorMessage } from '../errors.js';
import { formatDuration } from '../util/format.js';
import { parseDuration } from '../util/duration.js';
import { TIERS, type Tier } from '../config/tiers.js';

/**
 * Recovery objectives per source.
 *
 *  RPO (recovery point objective): the most data, measured in time, that may be
 *  lost; i.e. the latest successful backup must never be older than the RPO.
 *  RTO (recovery time objective): how long a restore may take.
 *
 * Tiers and their defaults:
 *   critical   RPO 15m  RTO 1h
 *   important  RPO 1h   RTO 4h
 *   normal     RPO 4h   RTO 24h   (default tier)
 *
 * RPO status of a source, with age = now − time of the last successful backup:
 *   ok        age <= RPO
 *   warning   RPO < age <= 2 × RPO   (one backup missed / running late)
 *   critical  age > 2 × RPO, or no successful backup at all
 * A last success in the future (clock skew) counts as age 0, i.e. ok.
 */

export const TIER_DEFAULTS: Readonly<Record<Tier, Readonly<{ rpo: string; rto: string }>>> = Object.freeze({
  critical: Object.freeze({ rpo: '15m', rto: '1h' }),
  important: Object.freeze({ rpo: '1h', rto: '4h' }),
  normal: Object.freeze({ rpo: '4h', rto: '24h' }),
});

export const DEFAULT_TIER: Tier = 'normal';

export interface ObjectiveOverrides {
  /** Duration string ('30m', '2h', ...) or milliseconds. */
  rpo?: string | number;
  rto?: string | number;
}

export interface Objectives {
  tier: Tier;
  rpoMs: number;
  rtoMs: number;
}

export type RpoStatus = 'ok' | 'warning' | 'critical';

function toMs(v: string | number, what: string): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v <= 0) throw new ConfigError(`${what}: expected a positive duration, got ${v}`);
    return v;
  }
  try {
    return parseDuration(v);
  } catch (e) {
    throw new ConfigError(`${what}: ${errorMessage(e)}`);
  }
}

/** Tier defaults with per-source overrides applied. Throws ConfigError on an unknown tier or bad duration. */
export function resolveObjectives(tier: Tier | undefined = DEFAULT_TIER, overrides: ObjectiveOverrides = {}): Objectives {
  if (!(TIERS as readonly string[]).includes(tier)) throw new ConfigError(`unknown tier "${tier}" (expected one of: ${TIERS.join(', ')})`);
  const d = TIER_DEFAULTS[tier];
  return {
    tier,
    rpoMs: toMs(overrides.rpo ?? d.rpo, 'rpo'),
    rtoMs: toMs(overrides.rto ?? d.rto, 'rto'),
  };
}

/** See the module comment for the thresholds. */
export function rpoStatus(lastSuccess: Date | undefined, rpoMs: number, now: Date = new Date()): RpoStatus {
  if (!(rpoMs > 0)) throw new ConfigError(`rpo must be a positive duration, got ${rpoMs}`);
  if (!lastSuccess || !Number.isFinite(lastSuccess.getTime())) return 'critical';
  const age = Math.max(0, now.getTime() - lastSuccess.getTime());
  if (age <= rpoMs) return 'ok';
  if (age <= 2 * rpoMs) return 'warning';
  return 'critical';
}

/** One-line explanation for status output, e.g. "last success 5h ago, RPO 4h: warning". */
export function describeRpo(lastSuccess: Date | undefined, rpoMs: number, now: Date = new Date()): string {
  const status = rpoStatus(lastSuccess, rpoMs, now);
  if (!lastSuccess || !Number.isFinite(lastSuccess.getTime())) return `no successful backup, RPO ${formatDuration(rpoMs)}: ${status}`;
  const age = Math.max(0, now.getTime() - lastSuccess.getTime());
  return `last success ${formatDuration(age)} ago, RPO ${formatDuration(rpoMs)}: ${status}`;
}

const durationString = z.string().superRefine((s, ctx) => {
  try {
    parseDuration(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: errorMessage(e) });
  }
});

/**
 * Config-file schema for an objectives block, e.g. `{ tier: critical, rpo: 30m }`.
 * Output keeps the strings; pass it to resolveObjectives(o.tier, o) for milliseconds.
 */
export const objectivesSchema = z
  .object({
    tier: z.enum(TIERS, { error: `expected one of: ${TIERS.join(', ')}` }).default(DEFAULT_TIER),
    rpo: durationString.optional(),
    rto: durationString.optional(),
  })
  .strict();
export type ObjectivesConfig = z.infer<typeof objectivesSchema>;
