import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { resolveSourcePaths } from '../../config/resolve.js';
import { snapshotStream, scratchDir, type DrillCheck, type DrillTargetContext, type ScratchTarget } from '../scratch.js';
import { restoreCommand } from './dump.js';
import { streamToNewFile } from '../../util/new-file.js';

/** Restore drill target of a command source (see ../scratch.ts and src/verify/drill.ts). */

export function commandTarget(ctx: DrillTargetContext): ScratchTarget {
  let dir: string | undefined;
  let bytes = 0;
  let output = '';
  const cmd = ctx.drill.restoreCommand;
  return {
    get description() {
      return cmd ? `drill restore command (scratch directory ${dir ?? '-'})` : `scratch file ${dir ? path.join(dir, 'dump') : '(not created yet)'}`;
    },
    async restore() {
      dir = await scratchDir(ctx);
      const counter = new PassThrough();
      counter.on('data', (b: Buffer) => (bytes += b.length));
      const input = await snapshotStream(ctx);
      input.once('error', (e) => counter.destroy(e));
      input.pipe(counter);
      if (cmd) {
        const r = await restoreCommand(resolveSourcePaths(ctx.src, ctx.cfg) as Parameters<typeof restoreCommand>[0], counter, {
          command: cmd,
          env: { LIFEBOAT_DRILL_DIR: dir, LIFEBOAT_DRILL_KIND: 'command' },
          signal: ctx.signal,
        });
        output = String(r.checks?.output ?? '');
      } else {
        await streamToNewFile(counter, path.join(dir, 'dump'));
      }
    },
    async integrity() {
      const checks: DrillCheck[] = [];
      if (cmd) checks.push({ name: 'restore command', ok: true, detail: `exit status 0${output ? `; output: ${output.slice(-200)}` : ''}` });
      const want = ctx.snapshot.summary?.totalBytes;
      if (want !== undefined) checks.push({ name: 'bytes', ok: bytes === want, detail: `${bytes} byte(s) restored, ${want} in the snapshot` });
      return checks;
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'command', LIFEBOAT_DRILL_TARGET: dir ? (cmd ? dir : path.join(dir, 'dump')) : '', LIFEBOAT_DRILL_DIR: dir ?? '' }),
    async cleanup() {
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
