/**
 * The program name and version written into snapshots and printed by
 * `lifeboat --version`. Its own module, with no imports, so that `--version`
 * loads no repository code.
 */
export const PROGRAM = 'lifeboat 0.1.0';
