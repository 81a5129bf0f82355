import { spawnSync } from 'node:child_process';

/**
 * rclone for tests: a local-directory remote defined in the environment only
 * (RCLONE_CONFIG_LBTEST_TYPE=local, no config file). `.ci/services.sh` installs
 * rclone; a test skips (with this reason) only when it is truly absent.
 */
export const RCLONE_REMOTE = 'lbtest';

export function rcloneMissing(): string | false {
  const r = spawnSync(process.env.LIFEBOAT_RCLONE || 'rclone', ['version'], { encoding: 'utf8', timeout: 20_000 });
  if (r.error || r.status !== 0) return 'rclone is not installed (apt-get install -y rclone; .ci/services.sh does it)';
  return false;
}

/** Environment defining the `lbtest:` local remote; merged into process.env for in-process tests. */
export const RCLONE_ENV: Record<string, string> = {
  [`RCLONE_CONFIG_${RCLONE_REMOTE.toUpperCase()}_TYPE`]: 'local',
  // no "config file not found" notice in every test's output
  RCLONE_CONFIG: '/dev/null',
};

export function useRcloneEnv(): void {
  Object.assign(process.env, RCLONE_ENV);
}

export function rcloneLocation(dir: string): string {
  return `rclone:${RCLONE_REMOTE}:${dir}`;
}
