/** The commands cli/wal-fast.ts runs. */
const FAST_COMMANDS = ['wal-push', 'wal-fetch', 'wal-spool-worker'] as const;
type FastCommand = (typeof FAST_COMMANDS)[number];

/** The global options cli/wal-fast.ts's parser takes before the command: with a value, and without. */
const GLOBAL_WITH_VALUE = new Set(['-r', '--repo', '-p', '--password-file', '--password-command', '--retry-lock']);
const GLOBAL_FLAGS = new Set(['--json', '-q', '--quiet']);

/**
 * The command of argv when it is one of cli/wal-fast.ts's, with only options its parser knows
 * before it (`lifeboat -r REPO wal-push %p` as well as `lifeboat wal-push %p -r REPO`);
 * undefined for any other command line (main.ts then loads the full CLI). A module of its own,
 * with no imports: main.ts asks it before loading cli/wal-fast.ts or the full CLI.
 */
export function walFastCommand(argv: string[]): FastCommand | undefined {
  const args = argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (GLOBAL_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (GLOBAL_FLAGS.has(a) || /^--(repo|password-file|password-command|retry-lock)=/.test(a) || /^-[rp]./.test(a)) continue;
    return (FAST_COMMANDS as readonly string[]).includes(a) ? (a as FastCommand) : undefined;
  }
  return undefined;
}
