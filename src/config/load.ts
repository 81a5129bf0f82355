import * as path from 'node:path';
import type { LineCounter, parseDocument } from 'yaml';
import { yamlPosition } from './yaml-position.js';
import { parseYamlLimited, readYamlFile } from './yaml-safe.js';
import { didYouMean, knownKeysAt } from './suggest.js';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { configSchema, type LifeboatConfig } from './config.js';

function formatIssue(file: string, doc: ReturnType<typeof parseDocument>, lc: LineCounter, issue: z.core.$ZodIssue, raw: unknown): string {
  const p = issue.path.map(String).join('.');
  let msg = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(configSchema, issue.path, raw);
    const shown = issue.keys.slice(0, 5).map((k) => `"${k}"${didYouMean(k, known)}`);
    if (issue.keys.length > shown.length) shown.push(`and ${issue.keys.length - shown.length} more`);
    msg = `unknown key${issue.keys.length > 1 ? 's' : ''} ${shown.join(', ')}`;
    const where = yamlPosition(doc, lc, [...issue.path, issue.keys[0]!]);
    return `${file}${where}: ${p ? p + ': ' : ''}${msg}`;
  }
  if (issue.code === 'invalid_union' && p.startsWith('sources.')) msg = `${msg} (check "kind" and the keys for that kind)`;
  return `${file}${yamlPosition(doc, lc, issue.path)}: ${p || '(top level)'}: ${msg}`;
}

/** Parse and validate a config file. Errors name the file, line, key path and reason. */
export function loadConfig(file: string): LifeboatConfig {
  const abs = path.resolve(file);
  return parseConfig(readYamlFile(abs, 'config file'), abs);
}

export function parseConfig(text: string, file: string): LifeboatConfig {
  const { doc, lc, value } = parseYamlLimited(text, file);
  const raw = value ?? {};
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 10).map((i) => formatIssue(file, doc, lc, i, raw));
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const cfg = parsed.data as LifeboatConfig;
  cfg.file = file;
  cfg.dir = path.dirname(file);
  return cfg;
}

