import { closeSync, constants as fsc, fstatSync, openSync, readSync } from 'node:fs';
import { isAlias, isCollection, isMap, isPair, isScalar, Lexer, LineCounter, parseDocument, type Node } from 'yaml';
import { ConfigError } from '../errors.js';

/**
 * Reading and parsing YAML configuration (lifeboat.yaml, runbook files) with
 * limits, so that a hostile or broken file ends in a clear ConfigError within
 * about a second and bounded memory instead of a parse that runs for minutes,
 * ignores SIGTERM (the parse is synchronous) and takes gigabytes:
 *
 * - the file must be a regular file of at most `maxBytes` (the YAML parser
 *   handles very roughly 1 MiB/s, and a real config is a few KiB);
 * - a cheap lexer pass stops at `maxTokens` tokens or `maxDepth` nested flow
 *   collections before the (much slower) parser runs;
 * - after parsing: at most `maxNodes` nodes, `maxDepth` nesting levels, no
 *   duplicate keys (checked in linear time; the parser's own check is
 *   quadratic in the size of a map);
 * - alias expansion is capped (`maxAliasCount`, the "billion laughs" case).
 */
export const YAML_LIMITS = {
  maxBytes: 1 << 20,
  maxTokens: 100_000,
  maxNodes: 50_000,
  maxDepth: 64,
  maxAliasCount: 100,
} as const;
export type YamlLimits = { [K in keyof typeof YAML_LIMITS]: number };

const MiB = 1 << 20;
const sizeText = (n: number) => (n >= MiB ? `${Number((n / MiB).toFixed(2))} MiB` : `${Number((n / 1024).toFixed(1))} KiB`);

/**
 * Read a configuration file: a regular file of at most `maxBytes`. Opened
 * non-blocking, so a FIFO without a writer is refused instead of hanging.
 */
export function readYamlFile(file: string, what = 'config file', limits: YamlLimits = YAML_LIMITS): string {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ConfigError(`cannot read ${what} ${file}: it is a directory`);
    if (!st.isFile()) throw new ConfigError(`cannot read ${what} ${file}: not a regular file`);
    if (st.size > limits.maxBytes) {
      throw new ConfigError(`${what} ${file} is too large: ${st.size} bytes (${sizeText(st.size)}); the limit is ${sizeText(limits.maxBytes)}`);
    }
    // read at most one byte more than the limit: the file may grow while we read it
    const buf = Buffer.alloc(Math.min(limits.maxBytes + 1, st.size + 1));
    let len = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, len, buf.length - len, null);
      } catch (err) {
        throw new ConfigError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (n === 0) break;
      len += n;
      if (len === buf.length) {
        if (len > limits.maxBytes) throw new ConfigError(`${what} ${file} is too large (the limit is ${sizeText(limits.maxBytes)})`);
        break;
      }
    }
    return buf.subarray(0, len).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export interface ParsedYaml {
  doc: ReturnType<typeof parseDocument>;
  lc: LineCounter;
  /** The document as plain JS (aliases expanded within `maxAliasCount`). */
  value: unknown;
}

/** ":line:col" of an offset, or "". */
function at(lc: LineCounter, offset: number | undefined): string {
  if (offset === undefined || offset < 0) return '';
  const { line, col } = lc.linePos(offset);
  return `:${line}:${col}`;
}

/** Parse a YAML document within the limits; every failure is a ConfigError naming file, line and column where known. */
export function parseYamlLimited(text: string, file: string, limits: YamlLimits = YAML_LIMITS): ParsedYaml {
  const tooBig = (why: string) => new ConfigError(`${file}: too large or too deeply nested for a configuration file: ${why}`);
  if (text.length > limits.maxBytes) throw tooBig(`more than ${sizeText(limits.maxBytes)}`);

  // 1. lexer pass: stops early, before the parser spends seconds (or minutes) on it
  let tokens = 0;
  let flowDepth = 0;
  for (const tok of new Lexer().lex(text)) {
    if (++tokens > limits.maxTokens) throw tooBig(`more than ${limits.maxTokens} YAML tokens`);
    if (tok === '[' || tok === '{') {
      if (++flowDepth > limits.maxDepth) throw tooBig(`more than ${limits.maxDepth} nested [ ] / { } collections`);
    } else if (tok === ']' || tok === '}') flowDepth = Math.max(0, flowDepth - 1);
  }

  // 2. parse; duplicate keys are checked below in linear time
  const lc = new LineCounter();
  let doc: ReturnType<typeof parseDocument>;
  try {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  } catch (err) {
    throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new ConfigError(`${file}${at(lc, e.pos?.[0])}: invalid YAML: ${e.message.split('\n')[0]}`);
  }

  // 3. node count, nesting depth and duplicate keys, walking the document without recursion
  let nodes = 0;
  const stack: Array<[unknown, number]> = [[doc.contents, 1]];
  while (stack.length) {
    const [node, depth] = stack.pop()!;
    if (node === null || node === undefined) continue;
    if (++nodes > limits.maxNodes) throw tooBig(`more than ${limits.maxNodes} values`);
    if (depth > limits.maxDepth) throw tooBig(`nested more than ${limits.maxDepth} levels${at(lc, (node as Node).range?.[0])}`);
    if (isPair(node)) {
      stack.push([node.key, depth], [node.value, depth]);
    } else if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        if (isScalar(pair.key)) {
          const k = String(pair.key.value);
          if (seen.has(k)) throw new ConfigError(`${file}${at(lc, pair.key.range?.[0])}: invalid YAML: duplicate key "${k}" (map keys must be unique)`);
          seen.add(k);
        }
        stack.push([pair, depth + 1]);
      }
    } else if (isCollection(node)) {
      for (const item of node.items) stack.push([item, depth + 1]);
    } else if (!isScalar(node) && !isAlias(node)) {
      // unknown node kind: nothing to descend into
    }
  }

  // 4. to plain JS with alias expansion capped
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: limits.maxAliasCount });
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    if (/alias/i.test(msg)) {
      throw new ConfigError(`${file}: invalid YAML: aliases (*name) expand to too much data (more than ${limits.maxAliasCount} expansions): ${msg}`);
    }
    throw new ConfigError(`${file}: invalid YAML: ${msg.split('\n')[0]}`);
  }
  return { doc, lc, value };
}
