import { z } from 'zod';
import { filesSourceSchema } from '../config/schema.js';

/**
 * Every source kind: its config schema. The CLI and the daemon look up
 * dump/restore functions by `kind` through sourceKinds().
 */
export const sourceSchema = z.discriminatedUnion('kind', [filesSourceSchema]);
export type SourceConfig = z.infer<typeof sourceSchema>;
