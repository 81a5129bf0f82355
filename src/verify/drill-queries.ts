import { commandArgv } from '../sources/command/dump.js';
import { findExecutable, runCapture } from '../sources/proc.js';
import { LifeboatError } from '../errors.js';
import type { DrillQuery } from '../config/drill.js';
import type { DrillCheck, QueryValue } from '../sources/scratch.js';

/**
 * Verification queries of a drill: run a query (SQL through the scratch
 * target, or a command) and compare its value with the query's assertions.
 */


/** Label of a query in results: its name, else the SQL/command (shortened). */
export function queryLabel(q: DrillQuery, index: number): string {
  if (q.name) return q.name;
  const text = q.sql ?? (typeof q.command === 'string' ? q.command : (q.command ?? []).join(' '));
  const one = text.replace(/\s+/g, ' ').trim();
  return `query ${index + 1}: ${one.length > 80 ? one.slice(0, 77) + '...' : one}`;
}

function show(v: QueryValue): string {
  if (v === null) return 'NULL';
  const s = String(v);
  return s.length > 200 ? JSON.stringify(s.slice(0, 197) + '...') : JSON.stringify(s);
}

/** Values recorded at backup time (snapshot.source.verification / verificationErrors), keyed by SQL. */
export interface RecordedValues {
  values?: Record<string, string | null>;
  errors?: Record<string, string>;
}

/** Compare a value with the assertions of a query. Returns null when it passes, else why not. */
export function assertValue(q: DrillQuery, v: QueryValue, recorded: RecordedValues = {}): string | null {
  if (q.equalsBackup && q.sql !== undefined) {
    const err = recorded.errors?.[q.sql];
    if (err !== undefined) return `the query failed at backup time: ${err}`;
    if (!recorded.values || !(q.sql in recorded.values)) {
      return 'no value recorded at backup time (the snapshot predates equalsBackup on this query; the next backup records it)';
    }
    const want = recorded.values[q.sql]!;
    const got = v === null ? null : String(v);
    const bothNum = want !== null && got !== null && want.trim() !== '' && got.trim() !== '' && Number.isFinite(Number(want)) && Number.isFinite(Number(got));
    const same = bothNum ? Number(want) === Number(got) : want === got;
    if (!same) return `got ${show(v)}, but ${want === null ? 'NULL' : JSON.stringify(want)} at backup time`;
  }
  const asNum = v === null || v === '' || typeof v === 'boolean' ? NaN : Number(v);
  if (q.min !== undefined || q.max !== undefined) {
    if (!Number.isFinite(asNum)) return `expected a number, got ${show(v)}`;
    if (q.min !== undefined && asNum < q.min) return `got ${asNum}, expected at least ${q.min}`;
    if (q.max !== undefined && asNum > q.max) return `got ${asNum}, expected at most ${q.max}`;
  }
  if (q.equals !== undefined) {
    if (typeof q.equals === 'number') {
      if (!(asNum === q.equals)) return `got ${show(v)}, expected ${q.equals}`;
    } else if (v === null || String(v) !== q.equals) return `got ${show(v)}, expected ${JSON.stringify(q.equals)}`;
  }
  if (q.expect !== undefined && (v === null || String(v) !== q.expect)) return `got ${show(v)}, expected ${JSON.stringify(q.expect)}`;
  if (q.matches !== undefined && (v === null || !new RegExp(q.matches).test(String(v)))) return `got ${show(v)}, expected a match of /${q.matches}/`;
  return null;
}

export function describeValue(v: QueryValue): string {
  return `value ${show(v)}`;
}

/** Run a verification command; its trimmed stdout is the value. Throws with the stderr tail when it fails. */
export async function runQueryCommand(cmd: string | string[], env: Record<string, string>, cwd: string | undefined, timeoutMs: number): Promise<string> {
  const [program, args] = commandArgv(cmd);
  const fullEnv = { ...process.env, ...env };
  const exe = program.includes('/') ? program : (findExecutable(program, fullEnv.PATH ?? '') ?? program);
  const r = await runCapture(exe, args, {
    env: fullEnv,
    ...(cwd ? { cwd } : {}),
    timeoutMs: Math.max(1000, timeoutMs),
    tool: typeof cmd === 'string' ? 'verification command' : program,
    allowFailure: true,
    maxStdout: 1024 * 1024,
  });
  if (r.code !== 0) {
    const tail = r.stderr.trim().split('\n').slice(-5).join(' | ');
    throw new LifeboatError(`exited with status ${r.code}${tail ? `: ${tail}` : ''}`);
  }
  return r.stdout.trim();
}

/** Run every query through `exec` and turn the outcomes into checks. Never throws for a failing query. */
export async function runQueries(queries: readonly DrillQuery[], exec: (q: DrillQuery) => Promise<QueryValue>, recorded: RecordedValues = {}): Promise<DrillCheck[]> {
  const out: DrillCheck[] = [];
  for (const [i, q] of queries.entries()) {
    const name = queryLabel(q, i);
    try {
      const v = await exec(q);
      const why = assertValue(q, v, recorded);
      out.push({ name, ok: why === null, detail: why ?? (q.equalsBackup ? `${describeValue(v)}, as at backup time` : describeValue(v)) });
    } catch (err) {
      const atBackup = q.equalsBackup && q.sql !== undefined ? recorded.errors?.[q.sql] : undefined;
      out.push({ name, ok: false, detail: `query failed: ${(err as Error).message}${atBackup ? ` (it failed at backup time too: ${atBackup})` : ''}` });
    }
  }
  return out;
}
