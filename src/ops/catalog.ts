/** The run catalog now lives in src/ops/catalog/; this path re-exports it for existing importers. */
export * from './catalog/index.js';
