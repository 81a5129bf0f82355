import { isMap, isSeq, type LineCounter, type Node, type parseDocument } from 'yaml';

/**
 * ":line:col" of the deepest node of a key path that exists in a parsed YAML
 * document (the key of a map entry, or a sequence item), for error messages
 * that point into the file; "" when not even the first key is there.
 */
export function yamlPosition(doc: ReturnType<typeof parseDocument>, lc: LineCounter, p: readonly PropertyKey[]): string {
  let node: unknown = doc.contents;
  let last: Node | undefined;
  for (const k of p) {
    if (isMap(node)) {
      const pair = node.items.find((it) => String((it.key as { value?: unknown })?.value ?? it.key) === String(k));
      if (!pair) break;
      last = (pair.key as Node) ?? last;
      node = pair.value;
    } else if (isSeq(node)) {
      node = node.items[Number(k)];
      if (node) last = node as Node;
    } else break;
  }
  const range = (last as { range?: [number, number, number] } | undefined)?.range;
  if (!range) return '';
  const { line, col } = lc.linePos(range[0]);
  return `:${line}:${col}`;
}
