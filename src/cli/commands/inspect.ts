import { Command } from 'commander';
import { filterSnapshots } from '../../repo/repository.js';
import { diffTrees, listed, repoStats, walkSnapshot } from '../../repo/inspect.js';
import { collect, collectRaw } from '../output.js';
import { type CliContext, WITHOUT_INDEX } from '../context.js';
import { formatBytes, formatElapsed as formatDuration } from '../../util/format.js';
import { table } from '../output.js';

interface FilterOpts {
  host?: string;
  path?: string[];
  tag?: string[];
  source?: string;
}

function filterOf(o: FilterOpts) {
  return {
    ...(o.host ? { host: o.host } : {}),
    ...(o.path ? { paths: o.path } : {}),
    ...(o.tag ? { tags: o.tag } : {}),
    ...(o.source ? { source: o.source } : {}),
  };
}

function withFilters(c: Command): Command {
  return c
    .option('--host <host>', 'only snapshots from this host')
    .option('--path <path>', 'only snapshots of exactly these paths (repeatable)', collectRaw)
    .option('--tag <tag>', 'only snapshots with all these tags (repeatable, comma-separated)', collect)
    .option('--source <name>', 'only snapshots of this configured source');
}

export function registerInspect(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  withFilters(program.command('snapshots').description('list snapshots')).action(async (o: FilterOpts, cmd: Command) => {
    const ctx = ctxOf(cmd);
    await ctx.withRepo(async (repo) => {
      const snaps = filterSnapshots(await repo.listSnapshots(), filterOf(o));
      if (ctx.out.json) {
        ctx.out.emit(snaps.map((s) => ({ ...s, short_id: s.id.slice(0, 8) })));
        return;
      }
      ctx.out.info(
        table(
          ['ID', 'Time (UTC)', 'Host', 'Tags', 'Paths / source', 'Size', 'Added'],
          snaps.map((s) => [
            s.id.slice(0, 8),
            s.time.replace('T', ' ').slice(0, 19),
            s.hostname,
            s.tags.join(','),
            s.source && s.source.kind !== 'stdin' ? `${s.source.kind}${s.source.name ? ':' + s.source.name : ''} ${s.paths.join(' ')}` : s.paths.join(' '),
            s.summary ? formatBytes(s.summary.totalBytes) : '',
            s.summary ? formatBytes(s.summary.dataAdded) : '',
          ]),
        ) + `\n${snaps.length} snapshot${snaps.length === 1 ? '' : 's'}`,
      );
    }, WITHOUT_INDEX);
  });

  program
    .command('ls')
    .description('list files in a snapshot')
    .argument('<snapshot>', 'snapshot id, prefix or "latest"')
    .argument('[path]', 'directory inside the snapshot', '/')
    .option('-l, --long', 'show mode, size and time')
    .option('-r, --recursive', 'list recursively (default for "/")')
    .action(async (ref: string, p: string, o: { long?: boolean; recursive?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const snap = await repo.findSnapshot(ref);
        let tree = snap.tree;
        let prefix = '';
        if (p !== '/') {
          // the restorer's module graph (file writers, fs metadata) only for a path inside the snapshot
          const { lookupPath } = await import('../../engine/restorer.js');
          const { node } = await lookupPath(repo, snap.tree, p);
          if (node?.type === 'dir') tree = node.subtree!;
          else {
            const item = listed(p, node!);
            ctx.out.emit([item]);
            ctx.out.info(o.long ? fmtLong(item) : item.path);
            return;
          }
          prefix = '/' + p.split('/').filter(Boolean).join('/');
        }
        const recursive = o.recursive || p === '/';
        // written as the walk goes (a listing of 100,000 files was held whole: 158 MB, restic 83)
        const items = recursive
          ? (async function* () {
              for await (const { path, node } of walkSnapshot(repo, tree, prefix)) yield listed(path, node);
            })()
          : (await repo.loadTree(tree)).nodes.map((n) => listed(`${prefix}/${n.name}`, n));
        await ctx.out.list(items, (it) => (o.long ? fmtLong(it) : it.path + (it.type === 'dir' ? '/' : '')));
      });
    });

  program
    .command('diff')
    .description('show what changed between two snapshots')
    .argument('<snapshot1>')
    .argument('<snapshot2>')
    .action(async (a: string, b: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const sa = await repo.findSnapshot(a);
        const sb = await repo.findSnapshot(b);
        const d = await diffTrees(repo, sa.tree, sb.tree);
        if (ctx.out.json) {
          ctx.out.emit({ from: sa.id, to: sb.id, changes: d });
          return;
        }
        const sym = { added: '+', removed: '-', modified: 'M', metadata: 'U', type: 'T' } as const;
        for (const e of d) ctx.out.info(`${sym[e.change]}    ${e.path}`);
        const count = (c: string) => d.filter((e) => e.change === c).length;
        ctx.out.info(`\n${count('added')} added, ${count('removed')} removed, ${count('modified')} modified, ${count('metadata')} metadata only`);
      });
    });

  withFilters(
    program
      .command('stats')
      .description('repository size: raw data vs stored bytes, deduplication and compression ratios')
      .argument('[snapshots...]', 'limit to these snapshots (default: all)'),
  ).action(async (refs: string[], o: FilterOpts, cmd: Command) => {
    const ctx = ctxOf(cmd);
    await ctx.withRepo(async (repo) => {
      let snaps = filterSnapshots(await repo.listSnapshots(), filterOf(o));
      if (refs.length) snaps = await Promise.all(refs.map((r) => repo.findSnapshot(r)));
      const s = await repoStats(repo, snaps);
      if (ctx.out.json) {
        ctx.out.emit(s);
        return;
      }
      ctx.out.info(
        [
          `snapshots:               ${s.snapshots}`,
          `total size (restorable): ${formatBytes(s.totalSize)}`,
          `unique data (raw):       ${formatBytes(s.uniqueRawSize)} in ${s.uniqueBlobs} blobs (${s.deltaBlobs} deltas)`,
          `unique data (stored):    ${formatBytes(s.uniqueStoredSize)}`,
          `repository size:         ${formatBytes(s.storedSize)} (packs ${formatBytes(s.packSize)})`,
          `deduplication ratio:     ${s.dedupRatio.toFixed(2)}x`,
          `compression ratio:       ${s.compressionRatio.toFixed(2)}x`,
          `space saving overall:    ${s.spaceSavingRatio.toFixed(2)}x`,
        ].join('\n'),
      );
    });
  });
  void formatDuration;
}

function fmtLong(it: { path: string; type: string; mode: number; size: number; mtime: string; linktarget?: string }): string {
  const t = ({ dir: 'd', symlink: 'l', fifo: 'p', chardev: 'c', blockdev: 'b', socket: 's' } as Record<string, string>)[it.type] ?? '-';
  const perm = [6, 3, 0].map((s) => ['r', 'w', 'x'].map((c, i) => ((it.mode >> s) & (4 >> i) ? c : '-')).join('')).join('');
  return `${t}${perm} ${String(it.size).padStart(12)} ${it.mtime.replace('T', ' ').slice(0, 19)} ${it.path}${it.linktarget !== undefined ? ' -> ' + it.linktarget : ''}`;
}
