import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackupProgress } from '../engine/progress.js';
import { figures, shortenPath, statusJson, statusLine } from './progress.js';

/** The status line and the --json status from counters (the pty and --json tests in test/cli-progress.test.ts run the real thing). */

function counters(at: number, o: Partial<Pick<BackupProgress, 'filesDone' | 'bytesDone' | 'totalFiles' | 'totalBytes' | 'scan' | 'errors'>>): BackupProgress {
  const p = new BackupProgress(at);
  p.started = true;
  Object.assign(p, o);
  return p;
}

test('statusLine: percent, files and bytes of the total, rate, ETA and the current file, within the width', () => {
  const p = counters(0, { filesDone: 8, bytesDone: 20 * 1048576, totalFiles: 24, totalBytes: 48 * 1048576, scan: 'done' });
  p.fileStarted('/srv/data/uploads/2024/very/deep/directory/structure/payload-08.bin');
  const f = figures(p, 4000, 5 * 1048576);
  assert.equal(f.secondsRemaining, 6, 'the average pace so far: 20 MiB in 4 s, 28 MiB to go');
  const wide = statusLine(f, 200, 'site');
  assert.equal(wide, 'site: [0:04] 41.7% 8/24 files 20.0/48.0 MiB 5.00 MiB/s ETA 0:06  /srv/data/uploads/2024/very/deep/directory/structure/payload-08.bin');
  for (const w of [100, 80]) {
    const l = statusLine(f, w, 'site');
    assert.ok(l.length <= w - 1, `${w}: ${l}`);
    assert.match(l, /payload-08\.bin$/, 'the file name survives the cut');
  }
  assert.ok(statusLine(f, 70, 'site').length <= 69);
  assert.ok(statusLine(f, 30).length <= 29, 'a very narrow terminal: cut, never wrapped');
});

test('statusLine and statusJson: no percent or ETA while scanning or for a stream; no control characters from file names', () => {
  const scanning = figures(counters(0, { filesDone: 3, bytesDone: 1000, totalFiles: 10, totalBytes: 5000, scan: 'running' }), 3000, 300);
  assert.match(statusLine(scanning, 200), /\(scanning: 10 files, 4\.88 KiB so far\)/);
  assert.doesNotMatch(statusLine(scanning, 200), /%|ETA/);
  const js = statusJson(scanning);
  assert.equal(js.scan_finished, false);
  assert.ok(!('percent_done' in js) && !('seconds_remaining' in js));

  const stream = figures(counters(0, { bytesDone: 3 * 1048576 }), 2000, 1.5 * 1048576);
  assert.equal(statusLine(stream, 200), '[0:02] 3.00 MiB 1.50 MiB/s');
  assert.ok(!('total_bytes' in statusJson(stream)) && !('percent_done' in statusJson(stream)));

  const hostile = counters(0, { scan: 'done', totalFiles: 1, totalBytes: 10 });
  hostile.fileStarted('/data/evil\x1b[2J\rname');
  assert.doesNotMatch(statusLine(figures(hostile, 1000, 0), 200), /[\x00-\x1f]/);

  const early = figures(counters(0, { filesDone: 1, bytesDone: 10, totalFiles: 9, totalBytes: 100, scan: 'done' }), 500, 0);
  assert.equal(early.secondsRemaining, undefined, 'no ETA before a second of data');
  assert.equal(early.percentDone, 0.1);
});

test('shortenPath keeps the end of the path, or both ends of a long name', () => {
  assert.equal(shortenPath('/a/b/c.txt', 20), '/a/b/c.txt');
  assert.equal(shortenPath('/very/long/directory/file.txt', 12), '…ry/file.txt');
  assert.equal(shortenPath('/very/long/directory/file.txt', 9), 'file.txt');
  const s = shortenPath('/x/' + 'n'.repeat(50) + '.end', 11);
  assert.equal(s.length, 11);
  assert.ok(s.startsWith('nnnnn') && s.endsWith('.end'), s);
});
