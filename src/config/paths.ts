import * as path from 'node:path';

/**
 * Resolve a path from the config relative to the config file's directory.
 * (Its own module so that modules the config schema imports can use it
 * without an import cycle through load.ts.)
 */
export function configPath(cfg: { dir: string }, p: string): string {
  return path.isAbsolute(p) ? p : path.resolve(cfg.dir, p);
}
