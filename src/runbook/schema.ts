/** The runbook schema lives in src/config/runbook.ts; this path re-exports it for existing importers. */
export * from '../config/runbook.js';
