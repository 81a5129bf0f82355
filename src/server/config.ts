import { z } from 'zod';

/** Top-level `server:` key: `lifeboat serve` (dashboard, API, status page; issue 6). */
export const serverConfigSchema = z.unknown();
