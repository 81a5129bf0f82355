import { IntegrityError } from '../errors.js';

/** One entry of a directory tree blob. See docs/format.md ("Trees"). */
export interface TreeNode {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  /** Modification/change times in milliseconds since the epoch (may have a fraction). */
  mtime: number;
  ctime?: number;
  size: number;
  inode?: number;
  dev?: number;
  /** Blob ids of the file's content chunks, in order (files only). */
  content?: string[];
  /** Sizes of the content chunks (same order); lets restore and delta search seek without the index. */
  sizes?: number[];
  /** Tree blob id of a directory's contents (dirs only). */
  subtree?: string;
  linktarget?: string;
}

export interface Tree {
  nodes: TreeNode[];
}

export function encodeTree(tree: Tree): Buffer {
  const nodes = [...tree.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Buffer.from(JSON.stringify({ nodes }));
}

const HEX64 = /^[0-9a-f]{64}$/;

export function decodeTree(buf: Buffer, id: string): Tree {
  let t: { nodes?: unknown };
  try {
    t = JSON.parse(buf.toString('utf8')) as { nodes?: unknown };
  } catch {
    throw new IntegrityError(`tree ${id}: not valid JSON`);
  }
  if (!t || !Array.isArray(t.nodes)) throw new IntegrityError(`tree ${id}: malformed`);
  for (const n of t.nodes as TreeNode[]) {
    if (!n || typeof n.name !== 'string' || n.name === '' || n.name.includes('/') || n.name === '.' || n.name === '..') {
      throw new IntegrityError(`tree ${id}: invalid node name ${JSON.stringify(n?.name)}`);
    }
    if (n.type !== 'file' && n.type !== 'dir' && n.type !== 'symlink') throw new IntegrityError(`tree ${id}: node ${n.name} has invalid type`);
    if (n.type === 'file' && (!Array.isArray(n.content) || !n.content.every((c) => typeof c === 'string' && HEX64.test(c)))) {
      throw new IntegrityError(`tree ${id}: file ${n.name} has an invalid content list`);
    }
    if (n.type === 'dir' && (typeof n.subtree !== 'string' || !HEX64.test(n.subtree))) {
      throw new IntegrityError(`tree ${id}: directory ${n.name} has no valid subtree`);
    }
    if (n.type === 'symlink' && typeof n.linktarget !== 'string') throw new IntegrityError(`tree ${id}: symlink ${n.name} has no target`);
  }
  return t as Tree;
}
