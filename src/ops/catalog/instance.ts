import { randomUUID } from 'node:crypto';

/** Identifies this process's runs (see markInterruptedRuns). */
export const PROCESS_INSTANCE = randomUUID();
