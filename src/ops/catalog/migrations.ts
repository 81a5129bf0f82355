import type { Migration } from './types.js';

// ---------------------------------------------------------------------------
// Migrations. Numbered, applied in order, each in its own transaction together
// with its row in schema_migrations. Never edit a released migration: add one.

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'runs',
    sqlite: [
      `CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('backup','forget','prune','check','drill','copy')),
        repository TEXT,
        status TEXT NOT NULL CHECK (status IN ('running','success','failed','partial')),
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        attempt INTEGER NOT NULL DEFAULT 1,
        will_retry INTEGER NOT NULL DEFAULT 0,
        bytes_read INTEGER,
        bytes_added INTEGER,
        total_size INTEGER,
        files INTEGER,
        errors INTEGER,
        snapshot_id TEXT,
        tool_versions TEXT,
        error TEXT,
        log_tail TEXT,
        host TEXT,
        pid INTEGER,
        instance TEXT
      )`,
      'CREATE INDEX runs_job_started_idx ON runs (job, started_at)',
      'CREATE INDEX runs_status_idx ON runs (status)',
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.runs (
        id BIGSERIAL PRIMARY KEY,
        job TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('backup','forget','prune','check','drill','copy')),
        repository TEXT,
        status TEXT NOT NULL CHECK (status IN ('running','success','failed','partial')),
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        attempt INTEGER NOT NULL DEFAULT 1,
        will_retry BOOLEAN NOT NULL DEFAULT false,
        bytes_read BIGINT,
        bytes_added BIGINT,
        total_size BIGINT,
        files BIGINT,
        errors BIGINT,
        snapshot_id TEXT,
        tool_versions JSONB,
        error TEXT,
        log_tail TEXT,
        host TEXT,
        pid INTEGER,
        instance TEXT
      )`,
      `CREATE INDEX runs_job_started_idx ON ${s}.runs (job, started_at)`,
      `CREATE INDEX runs_status_idx ON ${s}.runs (status)`,
    ],
  },
  {
    version: 2,
    name: 'alerts',
    sqlite: [
      `CREATE TABLE alerts (
        key TEXT PRIMARY KEY,
        job TEXT NOT NULL,
        check_name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('firing','resolved')),
        severity TEXT NOT NULL,
        first_at INTEGER NOT NULL,
        last_change_at INTEGER NOT NULL,
        last_sent_at INTEGER,
        count INTEGER NOT NULL DEFAULT 0,
        notified TEXT,
        notified_severity TEXT,
        resolved_at INTEGER,
        message TEXT NOT NULL DEFAULT ''
      )`,
      `CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        at INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT
      )`,
      'CREATE INDEX alert_deliveries_key_idx ON alert_deliveries (alert_key, at)',
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.alerts (
        key TEXT PRIMARY KEY,
        job TEXT NOT NULL,
        check_name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('firing','resolved')),
        severity TEXT NOT NULL,
        first_at TIMESTAMPTZ NOT NULL,
        last_change_at TIMESTAMPTZ NOT NULL,
        last_sent_at TIMESTAMPTZ,
        count INTEGER NOT NULL DEFAULT 0,
        notified TEXT,
        notified_severity TEXT,
        resolved_at TIMESTAMPTZ,
        message TEXT NOT NULL DEFAULT ''
      )`,
      `CREATE TABLE ${s}.alert_deliveries (
        id BIGSERIAL PRIMARY KEY,
        alert_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        ok BOOLEAN NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT
      )`,
      `CREATE INDEX alert_deliveries_key_idx ON ${s}.alert_deliveries (alert_key, at)`,
    ],
  },
];
