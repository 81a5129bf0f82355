import { test } from 'node:test';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { openCatalog } from '../../src/ops/catalog/open.js';
import type { Catalog } from '../../src/ops/catalog/types.js';

/**
 * The catalog backends the tests exercise: a SQLite file, and a private schema
 * in the PostgreSQL on loopback (dropped afterwards).
 */

/** Run fn with a fresh SQLite catalog at `file`; closed afterwards. */
export async function withSqliteCatalog<T>(file: string, fn: (c: Catalog) => Promise<T>): Promise<T> {
  const c = await openCatalog(file);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** Run fn with a catalog in a new schema of the loopback PostgreSQL (database `postgres`); the schema is dropped afterwards. */
export async function withPgCatalog<T>(prefix: string, fn: (c: Catalog) => Promise<T>): Promise<T> {
  const c = await openCatalog(`postgres://postgres@127.0.0.1:5432/postgres?schema=${prefix}${process.pid}_${randomBytes(4).toString('hex')}`);
  try {
    return await fn(c);
  } finally {
    await (c as Catalog & { dropSchema(): Promise<void> }).dropSchema();
    await c.close();
  }
}

/** Two tests of the same exercise: "<title> on SQLite" (a file in dir) and "<title> on PostgreSQL". */
export function testOnBothCatalogs(title: string, dir: () => string, exercise: (c: Catalog) => Promise<void>): void {
  const slug = title.replace(/[^a-z0-9]+/gi, '_').slice(0, 20).toLowerCase();
  test(`${title} on SQLite`, () => withSqliteCatalog(path.join(dir(), `${slug}_${randomBytes(3).toString('hex')}.db`), exercise));
  test(`${title} on PostgreSQL`, () => withPgCatalog(`lb_${slug}_`, exercise));
}
