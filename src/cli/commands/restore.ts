import { once } from 'node:events';
import { Command } from 'commander';
import { ConfigError, ExitCode, IntegrityError } from '../../errors.js';
import { restoreSnapshot } from '../../engine/restorer.js';
import { collect, collectRaw } from '../output.js';
import { type CliContext, streamCommandSettings } from '../context.js';
import type { Repository } from '../../repo/repository.js';
import { formatBytes, formatElapsed as formatDuration } from '../../util/format.js';
import { withoutOptimizer } from '../../util/jit.js';
import { useHugeBuffers } from '../../util/huge-buffer.js';
import { mallocSettings } from '../../util/malloc.js';
import { heapTrim } from '../../util/heap-trim.js';

interface RestoreOpts {
  target?: string;
  include?: string[];
  exclude?: string[];
  verify: boolean;
  overwrite?: boolean;
  stdout?: boolean;
  host?: string;
  path?: string[];
  tag?: string[];
  source?: string;
  toDatabase?: string;
  force?: boolean;
  clean?: boolean;
}

export function registerRestore(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('restore')
    .description('restore a snapshot (id, unique id prefix, or "latest"; "ID:/sub/path" restores a sub-path)')
    .argument('<snapshot>', 'snapshot id, prefix or "latest", optionally followed by :/path/inside')
    .option('-t, --target <dir>', 'directory to restore into ("-" writes a stream snapshot to stdout)')
    .option('--stdout', 'write the single file of a stream snapshot to stdout')
    .option('-i, --include <pattern>', 'restore only paths matching these globs (paths inside the snapshot, e.g. "/etc/**") (repeatable)', collectRaw)
    .option('-e, --exclude <pattern>', 'skip paths matching these globs (repeatable)', collectRaw)
    .option('--no-verify', 'do not count files as verified (kept for compatibility: every chunk is checked against its keyed hash as it is written, always)')
    .option('--overwrite', 'allow restoring into a non-empty target directory')
    .option('--host <host>', 'with "latest": only snapshots from this host')
    .option('--path <path>', 'with "latest": only snapshots of exactly these paths (repeatable)', collectRaw)
    .option('--tag <tag>', 'with "latest": only snapshots with these tags (repeatable, comma-separated)', collect)
    .option('--source <name>', 'restore the latest snapshot of a configured source (database sources restore into --to-database)')
    .option('--to-database <url>', 'database sources: restore into this database (postgres://..., mysql://..., redis://..., or a SQLite file path)')
    .option('--clean', 'database sources: drop the objects in the target before restoring them')
    .option('--force', 'database sources: allow restoring into a non-empty database / overwriting a file')
    .action(async (ref: string, o: RestoreOpts, cmd: Command) => {
      const ctx = ctxOf(cmd);
      let sub: string | undefined;
      const colon = ref.indexOf(':');
      if (colon >= 0) {
        sub = ref.slice(colon + 1) || '/';
        ref = ref.slice(0, colon);
      }
      if (o.source || o.toDatabase) {
        if (!o.source) throw new ConfigError('--to-database needs --source NAME (the configured database source)');
        // the sources (every kind's dump and drill code, the config schemas) load only for a source restore
        const { SOURCE_CAPABILITIES } = await import('../../config/sources.js');
        const { findSourceSnapshot, restoreSource } = await import('../../sources/pipeline.js');
        const { restoreTarget } = await import('../../sources/restore-target.js');
        const source = ctx.source(o.source);
        const src = source.config;
        if (SOURCE_CAPABILITIES[src.kind].layout === 'tree') throw new ConfigError(`source ${o.source} is a files source: use "restore latest --target DIR --tag source:${o.source}"`);
        if (o.stdout || o.target === '-') {
          // Standard output, for every stream source: never the live target, never the restoreCommand.
          if (o.toDatabase || o.clean || o.force) throw new ConfigError('--stdout / --target - writes the dump to standard output: --to-database, --clean and --force do not apply');
          const repo = await ctx.openRepo({ nameHint: source.repository, allowInit: false, bulk: true });
          try {
            const snap = await findSourceSnapshot(repo, source, ref);
            await snapshotToStdout(repo, snap.id);
          } catch (err) {
            process.stderr.write(`lifeboat: RESTORE FAILED for source ${o.source}${err instanceof IntegrityError ? ': data read from the repository failed verification' : ''}\n`);
            throw err;
          } finally {
            await repo.close();
          }
          return;
        }
        if (o.target !== undefined) throw new ConfigError(`--target applies to files snapshots; to restore source ${o.source}, use --to-database (or --target - / --stdout for standard output)`);
        const target = { ...restoreTarget(src.kind, o.toDatabase), ...(o.clean ? { clean: true } : {}), ...(o.force ? { force: true } : {}) };
        const repo = await ctx.openRepo({ nameHint: source.repository, allowInit: false, bulk: true });
        try {
          const { snapshot, result } = await restoreSource(repo, source, ref, target);
          ctx.out.info(`restored ${src.kind} source ${o.source} from snapshot ${snapshot.id.slice(0, 8)} (${snapshot.time}) in ${formatDuration(result.durationMs)}`);
          ctx.out.emit({ message_type: 'summary', snapshot_id: snapshot.id, source: o.source, ...result });
        } catch (err) {
          process.stderr.write(`lifeboat: RESTORE FAILED for source ${o.source}\n`);
          throw err;
        } finally {
          await repo.close();
        }
        return;
      }
      const toStdout = o.stdout || o.target === '-';
      if (!toStdout && !o.target) throw new ConfigError('restore needs --target DIR (or --stdout / --target - for stream snapshots)');
      const repo = await ctx.openRepo({ allowInit: false });
      try {
        const snap = await repo.findSnapshot(ref, {
          ...(o.host ? { host: o.host } : {}),
          ...(o.path ? { paths: o.path } : {}),
          ...(o.tag ? { tags: o.tag } : {}),
        });
        // a stream snapshot (a dump) is data through Buffers: see CliContext.openRepo's `bulk` (a files
        // restore gained nothing without incremental marking: 100k small files held +11 MB)
        if (toStdout || snap.stream !== undefined) {
          streamCommandSettings();
          // The heap's trims (util/heap-trim.ts) only where LIFEBOAT_TRIM_MS asks for them (no default interval): measured again
          // (docs/benchmarks.md, "check --read-data and a dump's restore where a page fault is dear"), they took
          // 0-4 MiB off its peak for 16% more wall time (the pages given back faulted in again), and the restore
          // is the recovery time.
          heapTrim(process.env, 0);
        }
        if (toStdout) {
          await snapshotToStdout(repo, snap.id, sub?.replace(/^\//, ''));
          return;
        }
        // a files restore waits on the thread pool, not on its JavaScript: no optimizing compiler from here
        // (util/jit.ts; after the index is loaded, whose loops are worth optimizing)
        withoutOptimizer();
        // a files restore's large buffers (deltas' plaintexts, bases) get mappings of their own (util/malloc.ts)
        if (snap.stream === undefined) {
          mallocSettings('filesRestore');
          // and those of 1 MiB or more are whole huge pages: one page fault per 2 MiB, not 512 (util/huge-buffer.ts).
          // Only with the C codec: its buffers never go to a worker thread (Node will not transfer them)
          if (repo.readPool.native) useHugeBuffers();
        }
        const bar = ctx.out.progress(snap.summary?.totalBytes, 'restore');
        const s = await restoreSnapshot(repo, snap, {
          target: o.target!,
          ...(sub ? { subpath: sub } : {}),
          ...(o.include ? { includes: o.include } : {}),
          ...(o.exclude ? { excludes: o.exclude } : {}),
          verify: o.verify,
          overwrite: !!o.overwrite,
          onProgress: (p) => bar.update(p.bytes),
        }).finally(() => bar.stop());
        ctx.out.info(
          `restored snapshot ${snap.id.slice(0, 8)} to ${o.target}: ${s.files} files, ${s.dirs} dirs, ${s.symlinks} symlinks` +
            (s.hardlinks ? `, ${s.hardlinks} hard links` : '') +
            (s.special ? `, ${s.special} special files` : '') +
            `, ${formatBytes(s.bytes)} in ${formatDuration(s.durationMs)}` +
            (o.verify ? ` (${s.verified} files verified)` : ''),
        );
        ctx.out.emit({ message_type: 'summary', snapshot_id: snap.id, ...s });
        for (const w of s.warnings) process.stderr.write(`warning: ${w.path}: ${w.message}\n`);
        if (s.errors.length) {
          for (const e of s.errors) process.stderr.write(`error: ${e.path}: ${e.message}\n`);
          const integrity = s.errors.some((e) => e.integrity || /verification|hash|authentic|missing|truncated|index/.test(e.message));
          process.stderr.write(`lifeboat: RESTORE INCOMPLETE: ${s.errors.length} item(s) could not be restored correctly\n`);
          process.exitCode = integrity ? ExitCode.INTEGRITY : ExitCode.FATAL;
        }
      } catch (err) {
        if (err instanceof IntegrityError) process.stderr.write('lifeboat: RESTORE FAILED: data read from the repository failed verification\n');
        throw err;
      } finally {
        await repo.close();
      }
    });
}

/**
 * Write a stream snapshot's file (or the named file at its root) to standard output. Not
 * stream.pipeline: a failed restore (verification, digest mismatch) must not destroy stdout
 * with its error, which would report it as an output failure with the wrong exit code; the
 * error reaches the command and exits 5. A closed reader (EPIPE) ends the process through
 * the stdout guard (src/cli/signals.ts). Each chunk is the command's own (streamChunks
 * `owned`) and is freed once written, not at a later collection.
 */
async function snapshotToStdout(repo: Repository, snapshotId: string, filename?: string): Promise<void> {
  const { streamChunks } = await import('../../sources/stream.js');
  for await (const chunk of await streamChunks(repo, snapshotId, { owned: true, ...(filename ? { filename } : {}) })) {
    if (!process.stdout.write(chunk, () => repo.release(chunk))) await once(process.stdout, 'drain');
  }
}
