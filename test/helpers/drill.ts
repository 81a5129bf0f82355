import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { runCli, tmpDir, type RunResult } from './tmp.js';

/**
 * Shared set-up of the drill tests: a scratch directory with a lifeboat.yaml
 * (one auto-initialised repository `main` at ./repo, the daemon catalog at
 * ./catalog.db, plus the test's sources and jobs), and the CLI calls every
 * drill test makes: back a job up, drill it (with --json).
 */

export const DRILL_ENV = { LIFEBOAT_PASSWORD: 'drill-pw' };

/** The last line of a command's --json output. */
export function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

export interface DrillSetup {
  dir: string;
  cfgFile: string;
  /** Write lifeboat.yaml: the repository, then `body` (sources, jobs, …), then the catalog (unless `catalog: false`). */
  writeConfig(body: string, opts?: { catalog?: boolean }): Promise<void>;
  /** `lifeboat <args> --config lifeboat.yaml` with the drill password. */
  cli(...args: string[]): Promise<RunResult>;
  /** `lifeboat run JOB`: fails the test unless it exits 0. */
  backup(job: string): Promise<RunResult>;
  /** `lifeboat drill JOB --json` (more flags after the job). */
  drill(job: string, ...flags: string[]): Promise<RunResult>;
  cleanup(): void;
}

export function drillSetup(): DrillSetup {
  const t = tmpDir();
  const cfgFile = path.join(t.dir, 'lifeboat.yaml');
  const cli = (...args: string[]) => runCli([...args, '--config', cfgFile], { env: DRILL_ENV });
  return {
    dir: t.dir,
    cfgFile,
    async writeConfig(body, opts = {}) {
      const text = `repositories:\n  main: { location: ./repo, autoInit: true }\n${body.replace(/\n*$/, '\n')}${opts.catalog === false ? '' : 'daemon:\n  catalog: ./catalog.db\n'}`;
      await fsp.writeFile(cfgFile, text);
    },
    cli,
    async backup(job) {
      const r = await cli('run', job);
      assert.equal(r.code, 0, `lifeboat run ${job}: ${r.stderr}`);
      return r;
    },
    drill: (job, ...flags) => cli('drill', job, ...(flags.length ? flags : ['--json'])),
    cleanup: t.cleanup,
  };
}
