/**
 * A secret as read from a file, a command's output or stdin: one trailing newline (LF or CRLF)
 * dropped, as `echo pw > file` or `pass show` leave it, nothing else. Every place that reads a
 * password uses this, so the key prewarm (cli/key-prewarm.ts) sees the password the command
 * will use.
 */
export function secretText(raw: string): string {
  return raw.replace(/\r?\n$/, '');
}
