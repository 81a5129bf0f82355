import { z } from 'zod';
import { secretSchema } from './schema.js';

const duration = z.string().regex(/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/, 'expected a duration like 30s, 15m, 12h, 7d');

/**
 * Top-level `server:` key: `lifeboat serve` (dashboard, JSON API, public
 * status page). Every key is optional; the defaults bind to loopback only.
 */
export const serverConfigSchema = z
  .object({
    listen: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:8080').default('127.0.0.1:8080').describe('address of the HTTP server'),
    publicUrl: z
      .string()
      .url()
      .optional()
      .describe('URL users reach the server at (behind a reverse proxy); its origin is the only one accepted for state-changing requests, https makes cookies Secure'),
    allowedHosts: z.array(z.string().min(1)).optional().describe('Host header values accepted (DNS rebinding protection); default: the publicUrl host, localhost, 127.0.0.1, ::1 and the listen host'),
    sessionTtl: duration.default('12h').describe('lifetime of a login session'),
    tls: z
      .object({ cert: z.string().min(1).describe('PEM certificate file'), key: z.string().min(1).describe('PEM private key file') })
      .strict()
      .optional()
      .describe('serve HTTPS directly (otherwise put a TLS-terminating reverse proxy in front)'),
    restoreRoots: z
      .array(z.string().min(1))
      .optional()
      .describe('file restores through the API may only target directories inside these (default: any absolute path)'),
    loginRateLimit: z
      .object({
        maxFailures: z.number().int().min(1).max(1000).default(5),
        window: duration.default('10m'),
      })
      .strict()
      .default({ maxFailures: 5, window: '10m' })
      .describe('failed logins per client address and user name before further attempts are refused for the window'),
    bootstrapAdmin: z
      .object({ user: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/), password: secretSchema })
      .strict()
      .optional()
      .describe('create this operator at start-up when no user exists yet'),
    statusPage: z
      .object({
        title: z.string().min(1).default('Service status'),
        description: z.string().optional(),
        historyDays: z.number().int().min(1).max(365).default(90),
        /** Job health that is only a warning does not make a component degraded on the public page. */
        degradeOn: z.enum(['warning', 'critical']).default('warning').describe('job health from which a component shows as degraded'),
        refreshSeconds: z.number().int().min(0).max(3600).default(60).describe('auto-refresh of the HTML page (0 = off)'),
      })
      .strict()
      .default({ title: 'Service status', historyDays: 90, degradeOn: 'warning', refreshSeconds: 60 }),
  })
  .strict();

export type ServerConfig = z.output<typeof serverConfigSchema>;

/** The effective server config (defaults when the key is missing). */
export function serverConfig(raw: unknown): ServerConfig {
  return serverConfigSchema.parse(raw ?? {});
}

export function parseDurationMs(s: string): number {
  const mult: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) total += Number(m[1]) * mult[m[2]!]!;
  return total;
}
