/** The notifier config schema lives in src/config/notifiers.ts; this path re-exports it for existing importers. */
export * from '../../config/notifiers.js';
