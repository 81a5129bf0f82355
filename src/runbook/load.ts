import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { parseYamlLimited, readYamlFile } from '../config/yaml-safe.js';
import { yamlPosition } from '../config/yaml-position.js';
import { didYouMean, knownKeysAt } from '../config/suggest.js';
import type { z } from 'zod';
import { configPath } from '../config/paths.js';
import type { LifeboatConfig } from '../config/config.js';
import { ConfigError } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import { crossCheckRunbook, stepName } from '../config/runbook-check.js';
import { runbookIncident, runbookSchema, type RollbackStep, type RunbookDef, type RunbookStep, type RunbooksConfig } from '../config/runbook.js';

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
