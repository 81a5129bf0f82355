import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { CLI, tmpDir } from './helpers/tmp.js';

/**
 * Password prompt on a terminal: `script` gives the CLI a real pseudo-terminal;
 * the answers are typed into it after the prompt appears.
 */
function onTty(args: string[], answers: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.LIFEBOAT_PASSWORD;
    delete env.LIFEBOAT_PASSWORD_FILE;
    const cmd = ['node', CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const p = spawn('script', ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let answered = 0;
    const onData = (d: Buffer) => {
      out += d.toString();
      const prompts = (out.match(/password[^:\n]*: /g) ?? []).length;
      while (answered < prompts && answered < answers.length) p.stdin.write(answers[answered++] + '\n');
      if (answered >= answers.length && prompts >= answers.length) p.stdin.end();
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

test('password prompt on a terminal: init asks twice, wrong password exits 12, typed password never echoed', async (t) => {
  const { dir, cleanup } = tmpDir();
  t.after(cleanup);
  const repo = path.join(dir, 'repo');
  const init = await onTty(['init', '--repo', repo], ['s3cret-typed', 's3cret-typed']);
  assert.equal(init.code, 0, init.out);
  assert.match(init.out, /enter password for new repository/);
  assert.match(init.out, /enter password again/);
  assert.doesNotMatch(init.out, /s3cret-typed/, 'the password must not be echoed');

  const mismatch = await onTty(['init', '--repo', path.join(dir, 'other')], ['one', 'two']);
  assert.equal(mismatch.code, 2, mismatch.out);
  assert.match(mismatch.out, /passwords do not match/);

  const ok = await onTty(['snapshots', '--repo', repo], ['s3cret-typed']);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /0 snapshots/);

  const wrong = await onTty(['snapshots', '--repo', repo], ['nope']);
  assert.equal(wrong.code, 12, wrong.out);
});
