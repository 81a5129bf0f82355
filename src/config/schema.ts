import { z } from 'zod';

/**
 * lifeboat.yaml schema. Every object is strict: an unknown key is an error that
 * names the key (typos must not silently disable a backup).
 */
export const secretSchema = z
  .object({
    env: z.string().min(1).optional().describe('name of an environment variable holding the secret'),
    file: z.string().min(1).optional().describe('path of a file holding the secret'),
    command: z.string().min(1).optional().describe('shell command that prints the secret'),
  })
  .strict()
  .refine((s) => [s.env, s.file, s.command].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of env, file or command',
  });

const size = z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB)?$/i, 'expected a size like 512KiB, 1MiB, 8M')]);

export const repositorySchema = z
  .object({
    location: z.string().min(1).describe('local path, or s3:https://host/bucket/prefix, or s3://bucket/prefix'),
    password: secretSchema.optional().describe('repository password (default: env LIFEBOAT_PASSWORD)'),
    autoInit: z.boolean().default(false).describe('create the repository on first use'),
    chunker: z.object({ min: size.optional(), avg: size.optional(), max: size.optional() }).strict().optional(),
    s3: z
      .object({
        region: z.string().optional(),
        forcePathStyle: z.boolean().optional(),
        endpoint: z.string().url().optional().describe('custom endpoint (overrides the location\'s host)'),
        accessKeyId: secretSchema.optional(),
        secretAccessKey: secretSchema.optional(),
        sessionToken: secretSchema.optional(),
        maxAttempts: z.number().int().min(1).max(20).optional(),
        partSize: size.optional(),
        multipartThreshold: size.optional(),
        objectLock: z.object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), days: z.number().int().positive() }).strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export const filesSourceSchema = z
  .object({
    kind: z.literal('files'),
    paths: z.array(z.string().min(1)).min(1, 'at least one path is required'),
    excludes: z.array(z.string()).default([]),
    oneFileSystem: z.boolean().default(false),
    tags: z.array(z.string()).default([]),
    repository: z.string().optional(),
  })
  .strict();

export type RepositoryConfig = z.infer<typeof repositorySchema>;
export type FilesSourceConfig = z.infer<typeof filesSourceSchema>;

export function parseSize(v: number | string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim())!;
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const mult: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };
  return Math.round(n * mult[unit]!);
}
