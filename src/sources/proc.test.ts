import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { runCapture, spawnTool } from './proc.js';

test('spawnTool observe sees every piece of the tool\'s stdout, in order, and the stream still carries all of it', async () => {
  // ~3 MB of non-repeating bytes, in many pipe reads
  const script = "let i=0;const b=Buffer.alloc(4096);const w=()=>{while(i<768){for(let j=0;j<4096;j+=4)b.writeUInt32LE((i*1024+j/4)>>>0,j);i++;if(!process.stdout.write(b))return process.stdout.once('drain',w);}};w();";
  const seen = createHash('sha256');
  let seenBytes = 0;
  let pieces = 0;
  const run = spawnTool(process.execPath, ['-e', script], {
    tool: 'node',
    observe: (chunk) => {
      seen.update(chunk);
      seenBytes += chunk.length;
      pieces++;
    },
  });
  const got = createHash('sha256');
  let gotBytes = 0;
  for await (const b of run.stream) {
    got.update(b as Buffer);
    gotBytes += (b as Buffer).length;
  }
  const r = await run.done;
  assert.equal(gotBytes, 768 * 4096);
  assert.equal(r.streamBytes, gotBytes);
  assert.equal(seenBytes, gotBytes);
  assert.ok(pieces > 1, 'read in more than one piece');
  assert.equal(seen.digest('hex'), got.digest('hex'), 'observe saw the same bytes in the same order');
});

test('runCapture: an abort kills the command and rejects at once (exit code 130); an aborted signal never starts one', async () => {
  const pidFile = `/tmp/lb-runcapture-${process.pid}`;
  const t0 = Date.now();
  await assert.rejects(
    runCapture('sh', ['-c', `echo $$ > ${pidFile}; exec sleep 30`], { tool: 'pg_ctl', signal: AbortSignal.timeout(300) }),
    (e: Error & { exitCode?: number }) => /pg_ctl aborted/.test(e.message) && e.exitCode === 130,
  );
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  const { readFileSync, rmSync } = await import('node:fs');
  const pid = Number(readFileSync(pidFile, 'utf8'));
  rmSync(pidFile, { force: true });
  let alive = true;
  for (let i = 0; i < 50 && alive; i++) {
    try {
      process.kill(pid, 0);
      await new Promise((r) => setTimeout(r, 20));
    } catch {
      alive = false;
    }
  }
  assert.equal(alive, false, 'the command was killed');
  await assert.rejects(runCapture('true', [], { signal: AbortSignal.abort('stop') }), /aborted: stop/);
});
