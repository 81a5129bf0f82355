/** Alert delivery now lives in src/ops/notify/; this path re-exports it for existing importers. */
export * from './notify/index.js';
