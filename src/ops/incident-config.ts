/** The incidents config schema lives in src/config/incidents.ts; this path re-exports it for existing importers. */
export * from '../config/incidents.js';
