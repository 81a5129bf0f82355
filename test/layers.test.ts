import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The architecture as a test: src/ has no import circles, and no module
 * imports from a higher layer. The layers are defined in one place, the table
 * in docs/architecture.md ("Layers"); this test reads that table and the
 * TypeScript sources (type-only imports count: they are dependencies too).
 *
 * Known debts are listed in the same document ("Known upward imports"): each
 * must still exist (so a fixed one is struck from the list) and nothing else
 * may be added. The list only shrinks.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = path.join(ROOT, 'src');
const DOC = path.join(ROOT, 'docs', 'architecture.md');

export function sourceFiles(dir = SRC, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...sourceFiles(path.join(dir, e.name), r));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !e.name.endsWith('.test.ts')) out.push(r);
  }
  return out.sort();
}

const IMPORT_RE = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

/** Relative imports of a source file, as src-relative .ts paths. Comments are stripped first. */
export function importsOf(file: string, text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out = new Set<string>();
  for (const m of code.matchAll(IMPORT_RE)) {
    const spec = (m[1] ?? m[2])!;
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
    out.add(target);
  }
  return [...out];
}

/** The layer table of docs/architecture.md: rows `| n | `a/`, `b.ts` | … |` between the layer markers. */
export function readLayers(doc: string): Map<string, number> {
  const m = /<!-- layers:begin -->([\s\S]*?)<!-- layers:end -->/.exec(doc);
  assert.ok(m, 'docs/architecture.md has no layer table (<!-- layers:begin --> … <!-- layers:end -->)');
  const layers = new Map<string, number>();
  for (const line of m[1]!.split('\n')) {
    const row = /^\|\s*(\d+)\s*\|([^|]*)\|/.exec(line);
    if (!row) continue;
    for (const name of row[2]!.matchAll(/`([^`]+)`/g)) layers.set(name[1]!, Number(row[1]));
  }
  return layers;
}

function readDebts(doc: string): Set<string> {
  const m = /<!-- debts:begin -->([\s\S]*?)<!-- debts:end -->/.exec(doc);
  if (!m) return new Set();
  return new Set([...m[1]!.matchAll(/`(src\/[^`]+\.ts) -> (src\/[^`]+\.ts)`/g)].map((x) => `${x[1]} -> ${x[2]}`));
}

/** The layer of a src-relative file: the longest matching folder (`repo/`) or file (`errors.ts`) entry. */
export function layerOf(file: string, layers: Map<string, number>): number | undefined {
  let best: [number, number] | undefined;
  for (const [name, n] of layers) {
    const hit = name.endsWith('/') ? file.startsWith(name) : file === name;
    if (hit && (!best || name.length > best[0])) best = [name.length, n];
  }
  return best?.[1];
}

/** Strongly connected components with more than one file (Tarjan). */
export function circles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

function graphOfSrc(): Map<string, string[]> {
  const files = sourceFiles();
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const deps = importsOf(f, readFileSync(path.join(SRC, f), 'utf8')).filter((d) => known.has(d));
    graph.set(f, deps);
  }
  return graph;
}

test('the import scanner sees static, type-only, re-export and dynamic imports (and ignores comments)', () => {
  const text = [
    "import { a } from '../repo/a.js';",
    "import type { B } from './b.js';",
    "export * from './c.js';",
    "export { d } from '../d.js';",
    "const e = await import('../engine/e.js');",
    "// import { x } from '../cli/x.js';",
    "/* import { y } from '../cli/y.js'; */",
    "import {\n  f,\n  g,\n} from '../ops/f.js';",
  ].join('\n');
  assert.deepEqual(importsOf('sources/s.ts', text).sort(), ['d.ts', 'engine/e.ts', 'ops/f.ts', 'repo/a.ts', 'sources/b.ts', 'sources/c.ts']);
  assert.deepEqual(circles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])), [['a', 'b', 'c']]);
  assert.deepEqual(circles(new Map([['a', ['b']], ['b', []]])), []);
});

test('src/ has no import circles and no import from a lower layer to a higher one (docs/architecture.md)', () => {
  const doc = readFileSync(DOC, 'utf8');
  const layers = readLayers(doc);
  const debts = readDebts(doc);
  const graph = graphOfSrc();
  const unplaced = [...graph.keys()].filter((f) => layerOf(f, layers) === undefined);
  assert.deepEqual(unplaced, [], 'every source file belongs to a layer of the table in docs/architecture.md');

  const upward: string[] = [];
  const seenDebts = new Set<string>();
  const pruned = new Map<string, string[]>();
  for (const [f, deps] of graph) {
    const keep: string[] = [];
    for (const d of deps) {
      const edge = `src/${f} -> src/${d}`;
      if (debts.has(edge)) {
        seenDebts.add(edge);
        continue;
      }
      keep.push(d);
      if (layerOf(d, layers)! > layerOf(f, layers)!) upward.push(`${edge} (layer ${layerOf(f, layers)} imports layer ${layerOf(d, layers)})`);
    }
    pruned.set(f, keep);
  }
  assert.deepEqual(upward, [], 'imports that run up the layers');
  const gone = [...debts].filter((d) => !seenDebts.has(d));
  assert.deepEqual(gone, [], 'known debts in docs/architecture.md that no longer exist: strike them from the list');
  assert.deepEqual(circles(pruned), [], 'import circles');
});

test('only the files source knows the files kind by name; nothing re-exports (no facades)', () => {
  const byName: string[] = [];
  const reexports: string[] = [];
  for (const f of sourceFiles()) {
    const code = readFileSync(path.join(SRC, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    if (!f.startsWith('sources/files/') && /\bkind\s*[!=]==?\s*'files'|'files'\s*[!=]==?\s*[\w.?]*kind\b|case\s+'files'\s*:/.test(code)) byName.push(f);
    if (/^export\s+(type\s+)?(\*|\{[^}]*\})\s+from\s/m.test(code)) reexports.push(f);
  }
  assert.deepEqual(byName, [], "callers decide by a kind's capabilities (config/sources.ts SOURCE_CAPABILITIES), not by kind === 'files'");
  assert.deepEqual(reexports, [], 'import a name from the module that declares it');
});

test('database kinds are known by their capabilities outside their folders (pointInTime, sqlDialect), not by name', () => {
  // the `pg` commands (cli/commands/pg.ts) are that kind's own commands
  // and the `mysql` commands; repo/binlog.ts is the binary log archive format, which reads the mysql kind's snapshot metadata
  const allowed = new Set(['cli/commands/pg.ts', 'cli/commands/mysql.ts', 'repo/binlog.ts']);
  const byName: string[] = [];
  for (const f of sourceFiles()) {
    if (f.startsWith('sources/') || f === 'config/sources.ts' || allowed.has(f)) continue;
    const code = readFileSync(path.join(SRC, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    if (/\bkind\s*[!=]==?\s*'(postgres|postgres-physical|mysql)'|'(postgres|postgres-physical|mysql)'\s*[!=]==?\s*[\w.?]*kind\b|case\s+'(postgres|postgres-physical|mysql)'\s*:/.test(code)) byName.push(f);
  }
  assert.deepEqual(byName, [], "read the kind's capabilities (sources/registry.ts sourceKind(k).pointInTime / .sqlDialect) instead of comparing kind names");
});
