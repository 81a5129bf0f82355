import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import { restoreSnapshot } from '../../engine/restorer.js';
import { scratchDir, type DrillCheck, type DrillTargetContext, type ScratchTarget } from '../scratch.js';

/** Restore drill target of a files source (see ../scratch.ts and src/verify/drill.ts). */

export function filesTarget(ctx: DrillTargetContext): ScratchTarget {
  let dir: string | undefined;
  let summary: Awaited<ReturnType<typeof restoreSnapshot>> | undefined;
  return {
    get description() {
      return `scratch directory ${dir ?? '(not created yet)'}`;
    },
    async restore() {
      dir = await scratchDir(ctx);
      const target = path.join(dir, 'restore');
      const work = restoreSnapshot(ctx.repo, ctx.snapshot, { target, verify: true });
      // restoreSnapshot has no abort signal: stop waiting on abort (cleanup removes the directory)
      summary = await new Promise((resolve, reject) => {
        const onAbort = () => reject(new LifeboatError('drill aborted during the restore'));
        if (ctx.signal.aborted) onAbort();
        ctx.signal.addEventListener('abort', onAbort, { once: true });
        work.then(resolve, reject).finally(() => ctx.signal.removeEventListener('abort', onAbort));
      });
      if (summary!.errors.length) {
        throw new LifeboatError(
          `${summary!.errors.length} file(s) could not be restored: ${summary!.errors
            .slice(0, 5)
            .map((e) => `${e.path}: ${e.message}`)
            .join('; ')}`,
        );
      }
    },
    async integrity() {
      const s = summary!;
      const checks: DrillCheck[] = [{ name: 'content verified', ok: s.verified === s.files, detail: `${s.verified} of ${s.files} file(s) re-read and matched the snapshot's chunk hashes` }];
      const sum = ctx.snapshot.summary;
      if (sum) {
        const files = sum.filesNew + sum.filesChanged + sum.filesUnmodified;
        checks.push({ name: 'file count', ok: s.files === files, detail: `${s.files} file(s) restored, ${files} in the snapshot` });
        checks.push({ name: 'bytes', ok: s.bytes === sum.totalBytes, detail: `${s.bytes} byte(s) restored, ${sum.totalBytes} in the snapshot` });
      }
      return checks;
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'files', LIFEBOAT_DRILL_TARGET: dir ? path.join(dir, 'restore') : '' }),
    async cleanup() {
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
