import * as path from 'node:path';
import { ConfigError } from '../../errors.js';
import { PostgresCatalog, type PostgresCatalogOptions } from './postgres.js';
import { SqliteCatalog, type SqliteCatalogOptions } from './sqlite.js';
import type { Catalog } from './types.js';

/**
 * Open the catalog named by daemon.catalog: a postgres:// URL, or a SQLite
 * file path (relative paths resolve against `baseDir`, normally the config
 * file's directory).
 */
export async function openCatalog(location: string, opts: { baseDir?: string } & SqliteCatalogOptions & PostgresCatalogOptions = {}): Promise<Catalog> {
  if (/^postgres(ql)?:\/\//i.test(location)) return PostgresCatalog.open(location, opts);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) throw new ConfigError(`catalog: unsupported location ${location.split('://')[0]}:// (use a file path or postgres://)`);
  const file = location === ':memory:' || path.isAbsolute(location) ? location : path.resolve(opts.baseDir ?? process.cwd(), location);
  return SqliteCatalog.open(file, opts);
}
