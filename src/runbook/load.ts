import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { parseYamlLimited, readYamlFile } from '../config/yaml-safe.js';
import { yamlPosition } from '../config/yaml-position.js';
import { didYouMean, knownKeysAt } from '../config/suggest.js';
import type { z } from 'zod';
import { configPath } from '../config/paths.js';
import type { LifeboatConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { parseDuration } from '../policy/retention.js';
import { INCIDENT_TEMPLATE_VARS } from '../ops/incident-config.js';
import { runbookIncident, runbookSchema, type RollbackStep, type RunbookDef, type RunbookStep, type RunbooksConfig } from './schema.js';

/**
 * Loading runbooks: the inline ones of `runbooks:` and the files of
 * `runbooks.dir`, each validated (zod, strict) and cross-checked against the
 * rest of the config (services, sources, repositories, notifier channels).
 * Errors name the file (with line:col for files), the runbook, the step and
 * the key.
 */

export interface RunbookSummary {
  name: string;
  title: string;
  description: string;
  scenario: string;
  severity: string;
  services: string[];
  estimatedMinutes?: number;
  steps: Array<{ name: string; type: string }>;
  /** The incident each run opens: none, private (default) or published with this public text. */
  incident: { open: boolean; publish: boolean; publicTitle?: string; publicMessage?: string };
  /** Where it is defined: "lifeboat.yaml" or the runbook file. */
  file?: string;
}

export interface LoadedRunbook {
  name: string;
  def: RunbookDef;
  file: string;
}

const NAME_RE = /^[A-Za-z0-9_.-]+$/;

export function stepName(s: RunbookStep | RollbackStep, index1: number): string {
  return s.name ?? `${s.type}-${index1}`;
}

/** Human path: steps.2.rollback.url -> step 3 ("name").rollback.url */
function describePath(def: unknown, p: PropertyKey[]): string {
  if (p[0] === 'steps' && typeof p[1] === 'number') {
    const steps = (def as { steps?: Array<{ name?: unknown; type?: unknown }> })?.steps;
    const s = steps?.[p[1]];
    const label = typeof s?.name === 'string' ? ` "${s.name}"` : typeof s?.type === 'string' ? ` (${s.type})` : '';
    const rest = p.slice(2).map(String).join('.');
    return `step ${p[1] + 1}${label}${rest ? ': ' + rest : ''}`;
  }
  return p.map(String).join('.') || '(top level)';
}

function issueMessage(i: z.core.$ZodIssue, body: unknown): string {
  if (i.code === 'unrecognized_keys') {
    const known = knownKeysAt(runbookSchema, i.path, body);
    return `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"${didYouMean(k, known)}`).join(', ')}`;
  }
  if (i.code === 'invalid_union' && i.path[i.path.length - 1] !== 'type') return `${i.message} (check "type" and the keys for that step type)`;
  return i.message;
}

function parseRunbookFile(file: string): LoadedRunbook {
  // size, token, depth, node and alias limits; YAML errors with line:column
  const { doc, lc, value } = parseYamlLimited(readYamlFile(file, 'runbook file'), file);
  const raw = (value ?? {}) as Record<string, unknown>;
  const base = path.basename(file).replace(/\.ya?ml$/i, '');
  let name = base;
  let body: unknown = raw;
  if (typeof raw.name === 'string') {
    name = raw.name;
    const { name: _n, ...rest } = raw;
    body = rest;
  }
  if (!NAME_RE.test(name)) throw new ConfigError(`${file}: runbook name "${name}": use letters, digits, _ . -`);
  const r = runbookSchema.safeParse(body);
  if (!r.success) {
    const lines = r.error.issues.slice(0, 10).map((i) => {
      const keyPath = i.code === 'unrecognized_keys' ? [...i.path, i.keys[0]!] : i.path;
      return `${file}${yamlPosition(doc, lc, keyPath)}: runbook ${name}: ${describePath(body, i.path)}: ${issueMessage(i, body)}`;
    });
    throw new ConfigError(`invalid runbook:\n  ${lines.join('\n  ')}`);
  }
  return { name, def: r.data, file };
}

function runbookFiles(cfg: LifeboatConfig, dir: string): string[] {
  const abs = configPath(cfg, dir);
  let names: string[];
  try {
    if (!statSync(abs).isDirectory()) throw new ConfigError(`${cfg.file}: runbooks.dir: ${abs} is not a directory`);
    names = readdirSync(abs);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${cfg.file}: runbooks.dir: cannot read ${abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return names
    .filter((n) => /\.ya?ml$/i.test(n) && !n.startsWith('.'))
    .sort()
    .map((n) => path.join(abs, n));
}

/** Cross-check one runbook against the config. Returns problems as "where: why" strings. */
export function crossCheckRunbook(cfg: LifeboatConfig, name: string, def: RunbookDef): string[] {
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
        else if (src.kind !== 'postgres' && src.kind !== 'mysql') out.push(`${w}: source: "${c.source}" is a ${src.kind} source; sql steps need a postgres or mysql source`);
      }
    };
    if (s.type === 'restore') {
      const src = cfg.sources?.[s.source];
      if (!src) out.push(`${where}: source: unknown source "${s.source}" (defined: ${sources.join(', ') || 'none'})`);
      else {
        if ((src.kind === 'files' || src.kind === 'postgres-physical') && !s.to) out.push(`${where}: to: a ${src.kind} source needs a target directory`);
        if (s.targetTime && src.kind !== 'postgres-physical') out.push(`${where}: targetTime: point-in-time recovery needs a postgres-physical source (base backups + WAL archive), "${s.source}" is ${src.kind}`);
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

/** All runbooks of the config (inline + dir), validated. Throws ConfigError listing every problem. */
export function loadRunbooks(cfg: LifeboatConfig): Map<string, LoadedRunbook> {
  const conf = (cfg.runbooks ?? {}) as RunbooksConfig;
  const out = new Map<string, LoadedRunbook>();
  const problems: string[] = [];
  for (const [name, def] of Object.entries(conf)) {
    if (name === 'dir') continue;
    out.set(name, { name, def: def as RunbookDef, file: cfg.file });
  }
  const dirs = conf.dir === undefined ? [] : Array.isArray(conf.dir) ? conf.dir : [conf.dir];
  for (const d of dirs) {
    for (const f of runbookFiles(cfg, d)) {
      try {
        const r = parseRunbookFile(f);
        const prev = out.get(r.name);
        if (prev) problems.push(`${f}: runbook ${r.name} is also defined in ${prev.file}`);
        else out.set(r.name, r);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(err.message.replace(/^invalid runbook:\n\s*/, ''));
      }
    }
  }
  for (const r of out.values()) for (const p of crossCheckRunbook(cfg, r.name, r.def)) problems.push(`${r.file}: ${p}`);
  if (problems.length) throw new ConfigError(`invalid runbooks:\n  ${problems.join('\n  ')}`);
  return out;
}

export function getRunbook(cfg: LifeboatConfig, name: string): LoadedRunbook {
  const all = loadRunbooks(cfg);
  const r = all.get(name);
  if (!r) throw new ConfigError(`unknown runbook "${name}" (defined: ${[...all.keys()].join(', ') || 'none'})`);
  return r;
}

function incidentSummary(def: RunbookDef): RunbookSummary['incident'] {
  const ic = runbookIncident(def);
  if (!ic.open) return { open: false, publish: false };
  if (!ic.publish) return { open: true, publish: false };
  return { open: true, publish: true, publicTitle: ic.publicTitle ?? def.title, ...(ic.publicMessage ? { publicMessage: ic.publicMessage } : {}) };
}

export function summarize(name: string, def: RunbookDef, file?: string): RunbookSummary {
  return {
    name,
    title: def.title,
    description: def.description,
    scenario: def.scenario,
    severity: def.severity,
    services: def.services,
    ...(def.estimatedTime ? { estimatedMinutes: Math.round(parseDuration(def.estimatedTime) / 60_000) } : {}),
    steps: def.steps.map((s, i) => ({ name: stepName(s, i + 1), type: s.type })),
    incident: incidentSummary(def),
    ...(file ? { file } : {}),
  };
}

export function listRunbooks(cfg: LifeboatConfig): RunbookSummary[] {
  return [...loadRunbooks(cfg).values()].sort((a, b) => a.name.localeCompare(b.name)).map((r) => summarize(r.name, r.def, r.file));
}
