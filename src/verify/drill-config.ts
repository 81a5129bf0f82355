import { z } from 'zod';

/** `jobs.NAME.drill`: how restore drills of this job's source are run and verified (issue 5). */
export const drillConfigSchema = z.object({}).passthrough();
export type DrillConfig = z.infer<typeof drillConfigSchema>;
