import { z } from 'zod';

/** Top-level `incidents:` key: communication channels, templates, escalation (issue 6). */
export const incidentsConfigSchema = z.unknown();
