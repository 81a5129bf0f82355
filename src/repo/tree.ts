import { isUtf8 } from 'node:buffer';
import { IntegrityError } from '../errors.js';
import { HEX_ID } from './hex-id.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket';
const TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink', 'fifo', 'chardev', 'blockdev', 'socket']);

/** The tree format version written by this code (docs/format.md "Trees"); version 1 trees are still read. */
export const TREE_VERSION = 2;

/** One entry of a directory tree blob. See docs/format.md ("Trees"). */
export interface TreeNode {
  /**
   * Entry name. For a name that is not valid UTF-8 this is its display form
   * (invalid bytes as `\xNN`) and `nameBytes` holds the real bytes.
   */
  name: string;
  /** Base64 of the raw name bytes, only when the name is not valid UTF-8 (tree version 2). */
  nameBytes?: string;
  type: NodeType;
  mode: number;
  uid: number;
  gid: number;
  /** Modification/change times in milliseconds since the epoch (may have a fraction). */
  mtime: number;
  ctime?: number;
  /** Modification time in nanoseconds since the epoch, decimal, may be negative (tree version 2). */
  mtimeNs?: string;
  size: number;
  inode?: number;
  dev?: number;
  /** Link count of a file with hard links (> 1); dev + inode identify the group within a snapshot. */
  nlink?: number;
  /** Device number of a character or block device. */
  rdev?: number;
  /** Blob ids of the file's content chunks, in order (files only). */
  content?: string[];
  /** Sizes of the content chunks (same order); lets restore and delta search seek without the index. */
  sizes?: number[];
  /** Holes of a sparse file: sorted [offset, length] pairs; the content is the file without them. */
  holes?: Array<[number, number]>;
  /** Extended attributes (POSIX ACLs are system.posix_acl_access / _default): name + base64 value. */
  xattrs?: Array<{ name: string; value: string }>;
  /** Tree blob id of a directory's contents (dirs only). */
  subtree?: string;
  linktarget?: string;
  /** Base64 of the raw link target when it is not valid UTF-8. */
  linktargetBytes?: string;
}

export interface Tree {
  nodes: TreeNode[];
}

/** Display form of raw name bytes: valid UTF-8 as is, every byte of an invalid sequence as `\xNN`. */
export function escapeBytes(b: Buffer): string {
  if (isUtf8(b)) return b.toString('utf8');
  let out = '';
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len > 0 && i + len <= b.length && isUtf8(b.subarray(i, i + len))) {
      out += b.toString('utf8', i, i + len);
      i += len;
    } else {
      out += '\\x' + c.toString(16).padStart(2, '0');
      i++;
    }
  }
  return out;
}

/** A node's name as raw bytes. */
export function nameBytes(n: TreeNode): Buffer {
  return n.nameBytes !== undefined ? Buffer.from(n.nameBytes, 'base64') : Buffer.from(n.name, 'utf8');
}

/** A unique key for a node's name (its raw bytes), for maps. */
export function nameKey(n: TreeNode): string {
  return nameBytes(n).toString('latin1');
}

/** A link target as raw bytes. */
export function linkBytes(n: TreeNode): Buffer {
  return n.linktargetBytes !== undefined ? Buffer.from(n.linktargetBytes, 'base64') : Buffer.from(n.linktarget ?? '', 'utf8');
}

/** Set name (and nameBytes when needed) of a node from raw bytes. */
export function withName<T extends Partial<TreeNode>>(n: T, raw: Buffer): T & { name: string } {
  const o = n as T & { name: string; nameBytes?: string };
  o.name = escapeBytes(raw);
  if (!isUtf8(raw)) o.nameBytes = raw.toString('base64');
  return o;
}

export function encodeTree(tree: Tree): Buffer {
  const keyed = tree.nodes.map((n) => ({ n, k: nameBytes(n) }));
  keyed.sort((a, b) => Buffer.compare(a.k, b.k));
  return Buffer.from(JSON.stringify({ v: TREE_VERSION, nodes: keyed.map((x) => x.n) }));
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const NS = /^-?[0-9]{1,20}$/;
const MAX_NAME = 4096;
const MAX_XATTRS = 1024;
const MAX_XATTR_VALUE = 65536;
const MAX_HOLES = 1 << 20;

const isUint = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

function checkRawName(id: string, raw: Buffer, shown: string): void {
  if (raw.length === 0 || raw.length > MAX_NAME || raw.includes(0x2f) || raw.includes(0) || (raw.length <= 2 && /^\.\.?$/.test(raw.toString('latin1')))) {
    throw new IntegrityError(`tree ${id}: invalid node name ${JSON.stringify(shown)}`);
  }
}

type WellFormed = { isWellFormed(): boolean; toWellFormed(): string };

/**
 * checkRawName for a name stored as a string (`name` without `nameBytes`), on the string itself:
 * the name is written as its UTF-8 bytes, and those hold a 0x2f or a 0 exactly where the string
 * holds '/' or NUL (every other character encodes to bytes of 0x80 and above; a lone surrogate to
 * EF BF BD), and are "." or ".." only for those strings. Returns the name's key among the tree's
 * string names: the string with each lone surrogate as U+FFFD, as its bytes are, so two names
 * written to the same bytes are one name. Not through a Buffer: a restore decodes every tree on
 * its main thread without V8's optimizing compiler (util/jit.ts), where the Buffer's creation,
 * its two searches and its latin1 copy were about a third of decodeTree's time.
 */
function stringNameKey(id: string, name: string): string {
  // UTF-8 takes 1-3 bytes per UTF-16 unit: over MAX_NAME units is over MAX_NAME bytes, under a third of it is not
  const n = name.length;
  if (n === 0 || n > MAX_NAME || (n > MAX_NAME / 3 && Buffer.byteLength(name, 'utf8') > MAX_NAME) || name.includes('/') || name.includes('\0') || name === '.' || name === '..') {
    throw new IntegrityError(`tree ${id}: invalid node name ${JSON.stringify(name)}`);
  }
  const w = name as unknown as WellFormed;
  return w.isWellFormed() ? name : w.toWellFormed();
}

/** Decode and validate a tree blob: every field read from the repository is checked before use. */
export function decodeTree(buf: Buffer, id: string): Tree {
  let t: { v?: unknown; nodes?: unknown };
  try {
    t = JSON.parse(buf.toString('utf8')) as { nodes?: unknown };
  } catch {
    throw new IntegrityError(`tree ${id}: not valid JSON`);
  }
  if (!t || typeof t !== 'object' || !Array.isArray(t.nodes)) throw new IntegrityError(`tree ${id}: malformed`);
  if (t.v !== undefined && t.v !== 1 && t.v !== 2) throw new IntegrityError(`tree ${id}: unsupported tree version ${JSON.stringify(t.v)}`);
  // Names are unique by their bytes. Names stored as strings, keyed by stringNameKey, and raw names (nameBytes), keyed by
  // their bytes as latin1, are kept apart: raw names are never valid UTF-8 and string names always encode to valid UTF-8,
  // so no name of one set has the bytes of a name of the other (a latin1 key may still equal a string name: "é").
  const seen = new Set<string>();
  const seenRaw = new Set<string>();
  for (const n of t.nodes as TreeNode[]) {
    if (!n || typeof n !== 'object' || typeof n.name !== 'string') throw new IntegrityError(`tree ${id}: node without a name`);
    let key: string;
    let keys: Set<string>;
    if (n.nameBytes !== undefined) {
      if (typeof n.nameBytes !== 'string' || !BASE64.test(n.nameBytes) || n.nameBytes.length > MAX_NAME * 2) throw new IntegrityError(`tree ${id}: invalid nameBytes`);
      const raw = Buffer.from(n.nameBytes, 'base64');
      if (isUtf8(raw)) throw new IntegrityError(`tree ${id}: nameBytes ${JSON.stringify(n.name)} is valid UTF-8 (must be in name)`);
      n.name = escapeBytes(raw); // the display form is derived, never trusted
      checkRawName(id, raw, n.name);
      key = raw.toString('latin1');
      keys = seenRaw;
    } else {
      key = stringNameKey(id, n.name);
      keys = seen;
    }
    if (keys.has(key)) throw new IntegrityError(`tree ${id}: duplicate name ${JSON.stringify(n.name)}`);
    keys.add(key);
    const name = JSON.stringify(n.name);
    if (!TYPES.has(n.type)) throw new IntegrityError(`tree ${id}: node ${name} has invalid type`);
    if (!isUint(n.mode) || n.mode > 0o7777) throw new IntegrityError(`tree ${id}: node ${name} has an invalid mode`);
    if (typeof n.mtime !== 'number' || !Number.isFinite(n.mtime)) throw new IntegrityError(`tree ${id}: node ${name} has an invalid mtime`);
    if (n.mtimeNs !== undefined && (typeof n.mtimeNs !== 'string' || !NS.test(n.mtimeNs))) throw new IntegrityError(`tree ${id}: node ${name} has an invalid mtimeNs`);
    if (!isUint(n.size)) throw new IntegrityError(`tree ${id}: node ${name} has an invalid size`);
    if (!Number.isSafeInteger(n.uid) || !Number.isSafeInteger(n.gid) || n.uid < 0 || n.gid < 0) throw new IntegrityError(`tree ${id}: node ${name} has an invalid owner`);
    if (n.nlink !== undefined && !isUint(n.nlink)) throw new IntegrityError(`tree ${id}: node ${name} has an invalid nlink`);
    if (n.rdev !== undefined && !isUint(n.rdev)) throw new IntegrityError(`tree ${id}: node ${name} has an invalid rdev`);
    if (n.type === 'file') {
      if (!Array.isArray(n.content) || !n.content.every((c) => typeof c === 'string' && HEX_ID.test(c))) {
        throw new IntegrityError(`tree ${id}: file ${name} has an invalid content list`);
      }
      if (n.sizes !== undefined && (!Array.isArray(n.sizes) || n.sizes.length !== n.content.length || !n.sizes.every(isUint))) {
        throw new IntegrityError(`tree ${id}: file ${name} has an invalid sizes list`);
      }
      if (n.holes !== undefined) {
        if (!Array.isArray(n.holes) || n.holes.length > MAX_HOLES) throw new IntegrityError(`tree ${id}: file ${name} has an invalid hole list`);
        let end = 0;
        for (const h of n.holes) {
          if (!Array.isArray(h) || h.length !== 2 || !isUint(h[0]) || !isUint(h[1]) || h[1] === 0 || h[0] < end || h[0] + h[1] > n.size) {
            throw new IntegrityError(`tree ${id}: file ${name} has an invalid hole list`);
          }
          end = h[0] + h[1];
        }
      }
    }
    if (n.type === 'dir' && (typeof n.subtree !== 'string' || !HEX_ID.test(n.subtree))) {
      throw new IntegrityError(`tree ${id}: directory ${name} has no valid subtree`);
    }
    if (n.type === 'symlink') {
      if (n.linktargetBytes !== undefined) {
        if (typeof n.linktargetBytes !== 'string' || !BASE64.test(n.linktargetBytes)) throw new IntegrityError(`tree ${id}: symlink ${name} has an invalid target`);
        n.linktarget = escapeBytes(Buffer.from(n.linktargetBytes, 'base64'));
      }
      if (typeof n.linktarget !== 'string') throw new IntegrityError(`tree ${id}: symlink ${name} has no target`);
      const lt = linkBytes(n);
      if (lt.length === 0 || lt.length > MAX_NAME || lt.includes(0)) throw new IntegrityError(`tree ${id}: symlink ${name} has an invalid target`);
    }
    if ((n.type === 'chardev' || n.type === 'blockdev') && n.rdev === undefined) throw new IntegrityError(`tree ${id}: device ${name} has no device number`);
    if (n.xattrs !== undefined) {
      if (!Array.isArray(n.xattrs) || n.xattrs.length > MAX_XATTRS) throw new IntegrityError(`tree ${id}: node ${name} has an invalid xattr list`);
      for (const x of n.xattrs) {
        if (!x || typeof x.name !== 'string' || x.name.length === 0 || x.name.length > 255 || x.name.includes('\0') || typeof x.value !== 'string' || !BASE64.test(x.value) || x.value.length > (MAX_XATTR_VALUE * 4) / 3 + 4) {
          throw new IntegrityError(`tree ${id}: node ${name} has an invalid extended attribute`);
        }
      }
    }
  }
  return { nodes: t.nodes as TreeNode[] };
}
