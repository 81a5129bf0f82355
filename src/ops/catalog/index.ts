/**
 * The run catalog (see types.ts for the records and the Catalog interface):
 * migrations, the shared SQL queries, the SQLite and PostgreSQL backends,
 * openCatalog() and the job-result helpers.
 */
export * from './types.js';
export { PROCESS_INSTANCE } from './instance.js';
export { MIGRATIONS } from './migrations.js';
export { SqliteCatalog, type SqliteCatalogOptions } from './sqlite.js';
export { PostgresCatalog, type PostgresCatalogOptions } from './postgres.js';
export { openCatalog } from './open.js';
export { runFinishFromJobResult } from './job-result.js';
export { LogTail } from './log-tail.js';
