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
  /** A log archive needed for point-in-time recovery has a gap (a binary log missing in the middle or at the start). */
  ARCHIVE_GAP: 6,
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

/**
 * A holder could not refresh its repository lock within its lease (or its lock
 * object was removed): the operation stops, since another process may now
 * take the repository.
 */
export class LockLostError extends LifeboatError {
  constructor(message: string) {
    super(message, ExitCode.LOCKED);
    this.name = 'LockLostError';
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

/**
 * Hide the password in URLs inside a message: `postgres://u:pw@host` becomes
 * `postgres://u:***@host`. Works on text that is not a valid URL (a bad
 * --to-database value is exactly where the password must not leak).
 */
export function redactUrlPasswords(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^\s:/@]*):[^\s]*@/gi, '$1$2:***@');
}

const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'is a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many levels of symbolic links',
  EIO: 'input/output error',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by peer',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'temporary failure in name resolution',
};

/**
 * A known failure that is not a LifeboatError (a Node system error such as
 * EEXIST/EACCES from the file system, an invalid URL) as a LifeboatError with
 * a one-line message and the documented exit code; undefined for anything else.
 */
export function knownFailure(err: unknown): LifeboatError | undefined {
  if (err instanceof LifeboatError) return err;
  if (!(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException & { input?: unknown; dest?: unknown };
  if (e.code === 'ERR_INVALID_URL') {
    const input = typeof e.input === 'string' ? ` "${redactUrlPasswords(e.input)}"` : '';
    return new LifeboatError(`invalid URL${input}`, ExitCode.USAGE, { cause: err });
  }
  if (typeof e.code === 'string' && typeof e.syscall === 'string') {
    const what = SYSTEM_ERRORS[e.code] ?? e.code;
    const where = [e.path, e.dest].filter((x): x is string => typeof x === 'string').join(' -> ');
    return new LifeboatError(`${e.syscall}${where ? ` ${where}` : ''}: ${what} (${e.code})`, ExitCode.FATAL, { cause: err });
  }
  return undefined;
}
