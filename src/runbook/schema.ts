import { z } from 'zod';

/** Top-level `runbooks:` key of lifeboat.yaml (issue 6). */
export const runbooksConfigSchema = z.unknown();
