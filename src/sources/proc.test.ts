import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnTool } from './proc.js';

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
