/** The server's config schema lives in src/config/server.ts; this path re-exports it for existing importers. */
export * from '../config/server.js';
