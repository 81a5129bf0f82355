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
  {
    // Dashboard views (docs/catalog-views.md). job_thresholds holds each job's
    // backup-age thresholds, written by the monitor from the config (absolute
    // alerts.age, else RPO / 2×RPO), so backup_status can grade without the config.
    version: 3,
    name: 'views',
    sqlite: [
      `CREATE TABLE job_thresholds (
        job TEXT PRIMARY KEY,
        warn_after_seconds INTEGER NOT NULL,
        critical_after_seconds INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      )`,
      `CREATE VIEW backup_log AS
        SELECT id, job, source, kind AS type, status,
          total_size AS size_bytes, bytes_added, files, errors,
          CASE WHEN finished_at IS NULL THEN NULL ELSE (finished_at - started_at) / 1000.0 END AS duration_seconds,
          repository AS location, snapshot_id, error,
          strftime('%Y-%m-%dT%H:%M:%fZ', started_at / 1000.0, 'unixepoch') AS started_at,
          CASE WHEN finished_at IS NULL THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%fZ', finished_at / 1000.0, 'unixepoch') END AS finished_at,
          attempt, will_retry, host
        FROM runs`,
      `CREATE VIEW backup_status AS
        WITH latest AS (
          SELECT r.* FROM runs r
          WHERE r.kind = 'backup' AND r.status <> 'running'
            AND r.id = (SELECT r2.id FROM runs r2 WHERE r2.job = r.job AND r2.kind = 'backup' AND r2.status <> 'running'
                        ORDER BY r2.started_at DESC, r2.id DESC LIMIT 1)
        ), good AS (
          SELECT g.* FROM runs g
          WHERE g.kind = 'backup' AND g.status IN ('success', 'partial')
            AND g.id = (SELECT g2.id FROM runs g2 WHERE g2.job = g.job AND g2.kind = 'backup' AND g2.status IN ('success', 'partial')
                        ORDER BY g2.started_at DESC, g2.id DESC LIMIT 1)
        ), graded AS (
          SELECT l.job, l.source, l.repository AS location,
            l.status AS last_status, l.error AS last_error,
            l.started_at AS last_run_ms,
            g.started_at AS good_ms, g.total_size AS last_size_bytes, g.snapshot_id AS last_snapshot_id,
            CASE WHEN g.started_at IS NULL THEN NULL
                 ELSE MAX(0, (CAST(strftime('%s', 'now') AS INTEGER) * 1000 - g.started_at) / 1000) END AS age_seconds,
            COALESCE(t.warn_after_seconds, 86400) AS warn_after_seconds,
            COALESCE(t.critical_after_seconds, 172800) AS critical_after_seconds
          FROM latest l
          LEFT JOIN good g ON g.job = l.job
          LEFT JOIN job_thresholds t ON t.job = l.job
        )
        SELECT job, 'backup' AS type, source, location, last_status, last_error,
          strftime('%Y-%m-%dT%H:%M:%fZ', last_run_ms / 1000.0, 'unixepoch') AS last_run_at,
          CASE WHEN good_ms IS NULL THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%fZ', good_ms / 1000.0, 'unixepoch') END AS last_success_at,
          last_size_bytes, last_snapshot_id, age_seconds, warn_after_seconds, critical_after_seconds,
          CASE WHEN age_seconds IS NULL OR age_seconds > critical_after_seconds THEN 'critical'
               WHEN age_seconds > warn_after_seconds OR last_status <> 'success' THEN 'warning'
               ELSE 'healthy' END AS status
        FROM graded`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.job_thresholds (
        job TEXT PRIMARY KEY,
        warn_after_seconds BIGINT NOT NULL,
        critical_after_seconds BIGINT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
      )`,
      `CREATE VIEW ${s}.backup_log AS
        SELECT id, job, source, kind AS type, status,
          total_size AS size_bytes, bytes_added, files, errors,
          EXTRACT(EPOCH FROM (finished_at - started_at))::double precision AS duration_seconds,
          repository AS location, snapshot_id, error,
          started_at, finished_at, attempt, will_retry, host
        FROM ${s}.runs`,
      `CREATE VIEW ${s}.backup_status AS
        WITH latest AS (
          SELECT DISTINCT ON (job) * FROM ${s}.runs
          WHERE kind = 'backup' AND status <> 'running'
          ORDER BY job, started_at DESC, id DESC
        ), good AS (
          SELECT DISTINCT ON (job) * FROM ${s}.runs
          WHERE kind = 'backup' AND status IN ('success', 'partial')
          ORDER BY job, started_at DESC, id DESC
        ), graded AS (
          SELECT l.job, l.source, l.repository AS location,
            l.status AS last_status, l.error AS last_error,
            l.started_at AS last_run_at,
            g.started_at AS last_success_at, g.total_size AS last_size_bytes, g.snapshot_id AS last_snapshot_id,
            CASE WHEN g.started_at IS NULL THEN NULL ELSE GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (now() - g.started_at))))::bigint END AS age_seconds,
            COALESCE(t.warn_after_seconds, 86400) AS warn_after_seconds,
            COALESCE(t.critical_after_seconds, 172800) AS critical_after_seconds
          FROM latest l
          LEFT JOIN good g ON g.job = l.job
          LEFT JOIN ${s}.job_thresholds t ON t.job = l.job
        )
        SELECT job, 'backup'::text AS type, source, location, last_status, last_error,
          last_run_at, last_success_at, last_size_bytes, last_snapshot_id, age_seconds,
          warn_after_seconds, critical_after_seconds,
          CASE WHEN age_seconds IS NULL OR age_seconds > critical_after_seconds THEN 'critical'
               WHEN age_seconds > warn_after_seconds OR last_status <> 'success' THEN 'warning'
               ELSE 'healthy' END AS status
        FROM graded`,
    ],
  },
  {
    // bytes moved to and from the repository storage by a run (storage/limits.ts counters)
    version: 4,
    name: 'runs bytes transferred',
    sqlite: ['ALTER TABLE runs ADD COLUMN bytes_uploaded INTEGER', 'ALTER TABLE runs ADD COLUMN bytes_downloaded INTEGER'],
    postgres: (s) => [`ALTER TABLE ${s}.runs ADD COLUMN bytes_uploaded BIGINT`, `ALTER TABLE ${s}.runs ADD COLUMN bytes_downloaded BIGINT`],
  },
  {
    // The fleet (src/ops/fleet/): daemons sharing one catalog register as agents and
    // heartbeat; operators address run requests to one agent, which polls for them;
    // fleet_watch: the lease of the one process that reports missed heartbeats.
    // runs.agent_id: the agent (daemon.agentId, default the host name) that ran it.
    version: 5,
    name: 'fleet',
    sqlite: [
      `CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        hostname TEXT NOT NULL,
        version TEXT NOT NULL,
        instance TEXT NOT NULL,
        pid INTEGER,
        started_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        heartbeat_ms INTEGER NOT NULL,
        stopped_at INTEGER,
        jobs_json TEXT NOT NULL DEFAULT '[]'
      )`,
      `CREATE TABLE run_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('job','drill')),
        name TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_at INTEGER NOT NULL,
        claimed_at INTEGER,
        claimed_by TEXT,
        finished_at INTEGER,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','success','partial','failed')),
        result TEXT
      )`,
      'CREATE INDEX run_requests_agent_idx ON run_requests (agent_id, claimed_at)',
      `CREATE TABLE fleet_watch (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      )`,
      'ALTER TABLE runs ADD COLUMN agent_id TEXT',
      'CREATE INDEX runs_agent_job_idx ON runs (agent_id, job, started_at)',
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.agents (
        id TEXT PRIMARY KEY,
        hostname TEXT NOT NULL,
        version TEXT NOT NULL,
        instance TEXT NOT NULL,
        pid INTEGER,
        started_at TIMESTAMPTZ NOT NULL,
        last_seen TIMESTAMPTZ NOT NULL,
        heartbeat_ms BIGINT NOT NULL,
        stopped_at TIMESTAMPTZ,
        jobs_json TEXT NOT NULL DEFAULT '[]'
      )`,
      `CREATE TABLE ${s}.run_requests (
        id BIGSERIAL PRIMARY KEY,
        agent_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('job','drill')),
        name TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_at TIMESTAMPTZ NOT NULL,
        claimed_at TIMESTAMPTZ,
        claimed_by TEXT,
        finished_at TIMESTAMPTZ,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','success','partial','failed')),
        result TEXT
      )`,
      `CREATE INDEX run_requests_agent_idx ON ${s}.run_requests (agent_id, claimed_at)`,
      `CREATE TABLE ${s}.fleet_watch (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
      )`,
      `ALTER TABLE ${s}.runs ADD COLUMN agent_id TEXT`,
      `CREATE INDEX runs_agent_job_idx ON ${s}.runs (agent_id, job, started_at)`,
    ],
  },
  {
    // High-availability scheduling (jobs with runOn: any, src/ops/catalog/job-slots.ts):
    // one row per job and scheduled slot (its fire time, UTC), claimed by one
    // agent, leased, taken over after the lease if the agent dies. Version 5
    // is the fleet's agents table.
    version: 6,
    name: 'job slots',
    sqlite: [
      `CREATE TABLE job_slots (
        job TEXT NOT NULL,
        slot INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        claimed_at INTEGER NOT NULL,
        lease_until INTEGER NOT NULL,
        finished_at INTEGER,
        result TEXT,
        takeovers INTEGER NOT NULL DEFAULT 0,
        taken_over_at INTEGER,
        previous_agent TEXT,
        PRIMARY KEY (job, slot)
      )`,
      'CREATE INDEX job_slots_open_idx ON job_slots (lease_until) WHERE finished_at IS NULL',
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.job_slots (
        job TEXT NOT NULL,
        slot TIMESTAMPTZ NOT NULL,
        agent_id TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL,
        lease_until TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        result TEXT,
        takeovers INTEGER NOT NULL DEFAULT 0,
        taken_over_at TIMESTAMPTZ,
        previous_agent TEXT,
        PRIMARY KEY (job, slot)
      )`,
      `CREATE INDEX job_slots_open_idx ON ${s}.job_slots (lease_until) WHERE finished_at IS NULL`,
    ],
  },
];
