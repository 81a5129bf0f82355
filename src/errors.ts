/**
 * Error classes with the process exit code each maps to. The CLI is the only
 * place that turns these into exit codes; library code throws them.
 *
 * Exit codes (documented in README.md):
 *   0  success
 *   1  fatal error (I/O, unreachable server, dump tool failed, ...)
 *   2  usage or configuration error (bad flag, malformed lifeboat.yaml)
 *   3  backup finished but some files could not be read (partial snapshot)
 *   5  integrity error: check found damage, or restored data failed verification
 *  10  repository does not exist / is not a Lifeboat repository
 *  11  could not lock the repository
 *  12  wrong password (no key file could be opened)
 * 130  interrupted (SIGINT/SIGTERM)
 */
export const ExitCode = {
  OK: 0,
  FATAL: 1,
  USAGE: 2,
  PARTIAL: 3,
  INTEGRITY: 5,
  NO_REPO: 10,
  LOCKED: 11,
  WRONG_PASSWORD: 12,
  INTERRUPTED: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class LifeboatError extends Error {
  readonly exitCode: ExitCodeValue;
  constructor(message: string, exitCode: ExitCodeValue = ExitCode.FATAL, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LifeboatError';
    this.exitCode = exitCode;
  }
}

export class ConfigError extends LifeboatError {
  constructor(message: string) {
    super(message, ExitCode.USAGE);
    this.name = 'ConfigError';
  }
}

export class WrongPasswordError extends LifeboatError {
  constructor(message = 'wrong password or no key found: none of the repository key files could be opened with the given password') {
    super(message, ExitCode.WRONG_PASSWORD);
    this.name = 'WrongPasswordError';
  }
}

export class NoRepositoryError extends LifeboatError {
  constructor(location: string) {
    super(`no Lifeboat repository at ${location} (run "lifeboat init" first)`, ExitCode.NO_REPO);
    this.name = 'NoRepositoryError';
  }
}

export class LockError extends LifeboatError {
  constructor(message: string) {
    super(message, ExitCode.LOCKED);
    this.name = 'LockError';
  }
}

/** Data read back from the repository failed a hash/MAC check or is structurally invalid. */
export class IntegrityError extends LifeboatError {
  constructor(message: string) {
    super(message, ExitCode.INTEGRITY);
    this.name = 'IntegrityError';
  }
}

/** Storage object not found. Backends throw this so callers can tell "missing" from "broken". */
export class NotFoundError extends LifeboatError {
  constructor(what: string) {
    super(`not found: ${what}`, ExitCode.FATAL);
    this.name = 'NotFoundError';
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
