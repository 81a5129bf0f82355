import { INCIDENT_TEMPLATE_VARS } from './incidents.js';
import type { RollbackStep, RunbookDef, RunbookStep } from './runbook.js';
import { SOURCE_CAPABILITIES, type SourceConfig } from './sources.js';

/**
 * Cross-checks of a runbook against the rest of the config (service, source,
 * repository and notifier channel names). Pure: it needs only config data, so
 * the config loader runs it on inline runbooks and src/runbook/load.ts on
 * runbook files.
 */

/** The parts of the config a runbook is checked against (a LifeboatConfig fits). */
export interface RunbookCheckConfig {
  services?: Record<string, unknown>;
  sources?: Record<string, { kind: string }>;
  repositories: Record<string, unknown>;
  notifiers?: unknown;
  incidents?: unknown;
}

export function stepName(s: RunbookStep | RollbackStep, index1: number): string {
  return s.name ?? `${s.type}-${index1}`;
}

/** Cross-check one runbook against the config. Returns problems as "where: why" strings. */
export function crossCheckRunbook(cfg: RunbookCheckConfig, name: string, def: RunbookDef): string[] {
  const out: string[] = [];
  const services = Object.keys(cfg.services ?? {});
  const sources = Object.keys(cfg.sources ?? {});
  const channels = Object.keys((cfg.notifiers as { channels?: Record<string, unknown> } | undefined)?.channels ?? {});
  const incidentChannels = ((cfg.incidents as { channels?: string[] } | undefined)?.channels ?? []).length;
  def.services.forEach((s, i) => {
    if (!cfg.services?.[s]) out.push(`runbook ${name}: services.${i}: unknown service "${s}" (defined: ${services.join(', ') || 'none'})`);
  });
  const checkStep = (s: RunbookStep | RollbackStep, where: string) => {
    const needSqlConn = (c: { url?: string | undefined; source?: string | undefined }, w: string) => {
      if (!c.url && !c.source) out.push(`${w}: give url or source`);
      if (c.url && c.source) out.push(`${w}: give url or source, not both`);
      if (c.source) {
        const src = cfg.sources?.[c.source];
        if (!src) out.push(`${w}: source: unknown source "${c.source}" (defined: ${sources.join(', ') || 'none'})`);
        else if (!SOURCE_CAPABILITIES[src.kind as SourceConfig['kind']]?.sqlDialect) out.push(`${w}: source: "${c.source}" is a ${src.kind} source; sql steps need a postgres or mysql source`);
      }
    };
    if (s.type === 'restore') {
      const src = cfg.sources?.[s.source];
      if (!src) out.push(`${where}: source: unknown source "${s.source}" (defined: ${sources.join(', ') || 'none'})`);
      else {
        if (SOURCE_CAPABILITIES[src.kind as SourceConfig['kind']]?.restoresTo === 'directory' && !s.to) out.push(`${where}: to: a ${src.kind} source needs a target directory`);
        if (s.targetTime && !SOURCE_CAPABILITIES[src.kind as SourceConfig['kind']]?.pointInTime) out.push(`${where}: targetTime: point-in-time recovery needs a postgres-physical source (base backups + WAL archive), "${s.source}" is ${src.kind}`);
      }
      if (s.repository && !cfg.repositories[s.repository]) out.push(`${where}: repository: unknown repository "${s.repository}"`);
    } else if (s.type === 'sql') needSqlConn(s, where);
    else if (s.type === 'wait' && s.until?.type === 'sql') needSqlConn(s.until, `${where}: until`);
    else if (s.type === 'notify') {
      for (const [i, c] of (s.channels ?? []).entries()) {
        if (!channels.includes(c)) out.push(`${where}: channels.${i}: unknown notifier channel "${c}" (defined in notifiers.channels: ${channels.join(', ') || 'none'})`);
      }
      if (!s.channels && !incidentChannels) out.push(`${where}: channels: none given and incidents.channels is empty`);
      const known = [...INCIDENT_TEMPLATE_VARS, 'severity', 'actor'] as string[];
      for (const field of ['title', 'text'] as const) {
        const bad = [...s[field].matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}/g)].map((m) => m[1]!).filter((v) => !known.includes(v));
        if (bad.length) out.push(`${where}: ${field}: unknown template variable(s) ${bad.map((b) => `{{${b}}}`).join(', ')} (known: ${known.join(', ')})`);
      }
    }
  };
  def.steps.forEach((s, i) => {
    const where = `runbook ${name}: step ${i + 1} "${stepName(s, i + 1)}"`;
    checkStep(s, where);
    if (s.rollback) checkStep(s.rollback, `${where}: rollback`);
  });
  return out;
}
