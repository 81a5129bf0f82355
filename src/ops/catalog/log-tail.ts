/** Keeps the last `maxLines` log lines of a run, for RunFinish.logTail. */
export class LogTail {
  private readonly lines: string[] = [];
  constructor(private readonly maxLines = 100) {}
  push(line: string): void {
    for (const l of line.split('\n')) {
      this.lines.push(l);
      if (this.lines.length > this.maxLines) this.lines.shift();
    }
  }
  toString(): string {
    return this.lines.join('\n');
  }
}
