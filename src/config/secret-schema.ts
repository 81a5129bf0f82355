import { z } from 'zod';

/** A secret in the config: from an environment variable, a file or a command, never inline. */
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
