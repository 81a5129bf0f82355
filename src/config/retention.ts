import { z } from 'zod';
import { errorMessage } from '../errors.js';
import { parseCalendarDuration } from '../util/duration.js';

/**
 * The `retention:` block of lifeboat.yaml (defaults.retention, jobs.*.retention).
 * The policy itself (applyRetention, validatePolicy) lives in src/policy/retention.ts.
 */

const count = z
  .number({ error: 'expected a whole number' })
  .int('expected a whole number')
  .min(-1, 'expected a count >= 0, or -1 for unlimited');

/** Config-file schema for a retention block (keys as in RetentionPolicy). */
export const retentionPolicySchema = z
  .object({
    keepLast: count.optional(),
    keepHourly: count.optional(),
    keepDaily: count.optional(),
    keepWeekly: count.optional(),
    keepMonthly: count.optional(),
    keepYearly: count.optional(),
    keepWithin: z
      .string()
      .superRefine((s, ctx) => {
        try {
          parseCalendarDuration(s);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: errorMessage(e) });
        }
      })
      .optional(),
    keepTags: z.array(z.string().min(1, 'empty tag').refine((t) => t.split(',').every((x) => x.trim() !== ''), 'empty tag in tag list')).optional(),
  })
  .strict();
