import { createRequire } from 'node:module';

// node:child_process (and node:net behind it) only for a password command: wal-push /
// wal-fetch run once per WAL segment and resolve a password file on every call.
const requireBuiltin = createRequire(import.meta.url);
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { secretText } from '../util/secret-text.js';

/** Where a secret comes from. Exactly one of env / file / command. Secrets are never written to logs or the catalog. */
export interface SecretRef {
  env?: string;
  file?: string;
  command?: string;
}

export function describeSecret(ref: SecretRef): string {
  if (ref.env) return `environment variable ${ref.env}`;
  if (ref.file) return `file ${ref.file}`;
  if (ref.command) return 'password command';
  return 'nothing';
}

/** Resolve a secret; `what` names it in errors (never the value). */
export function resolveSecret(ref: SecretRef, what: string): string {
  if (ref.env !== undefined) {
    const v = process.env[ref.env];
    if (v === undefined || v === '') throw new ConfigError(`${what}: environment variable ${ref.env} is not set or empty`);
    return v;
  }
  if (ref.file !== undefined) {
    let v: string;
    try {
      v = readFileSync(ref.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`${what}: cannot read ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    v = secretText(v);
    if (!v) throw new ConfigError(`${what}: file ${ref.file} is empty`);
    return v;
  }
  if (ref.command !== undefined) {
    let out: string;
    try {
      const { execFileSync } = requireBuiltin('node:child_process') as typeof import('node:child_process');
      out = execFileSync('/bin/sh', ['-c', ref.command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    } catch (err) {
      throw new ConfigError(`${what}: password command failed (${(err as { status?: number }).status ?? 'signal'})`);
    }
    out = secretText(out);
    if (!out) throw new ConfigError(`${what}: password command printed nothing`);
    return out;
  }
  throw new ConfigError(`${what}: no source given (set env, file or command)`);
}
