/** The drill config schema lives in src/config/drill.ts; this path re-exports it for existing importers. */
export * from '../config/drill.js';
