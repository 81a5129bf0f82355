import { requireAddon } from './native.js';

/**
 * Large buffers in transparent huge pages (native/mem.c hugeBuffer): a buffer of 1 MiB or more from
 * malloc is a mapping of its own (above the mmap threshold the restore sets: util/malloc.ts) that
 * the kernel fills 4 KiB at a time on first touch, one page fault per page; on the 2-core virtual
 * machines the bench runs on a fault costs ~12 us (a 1.5 MiB buffer: 4.5 ms; the same in one 2 MiB
 * huge page: one fault, 0.1 ms). A files restore took ~85k faults (restic ~20k), most of them in
 * its pack reads, decode outputs and delta chains (docs/benchmarks.md, "Huge pages for the
 * restore's large buffers"). Such a buffer is whole 2 MiB pages, 2 MiB-aligned; its ArrayBuffer is
 * exactly the size asked for, freed at once by freeLarge (or when collected).
 *
 * Off unless a command turns it on (useHugeBuffers: a files restore); LIFEBOAT_HUGE_BUFFERS=0
 * keeps it off, as do a missing addon and kernels without huge pages (the pages are then 4 KiB,
 * as before). hugeBuffer() makes one whether or not the command turned them on, for a buffer that
 * is large, written whole at once and freed soon (a delta's bases joined into one dictionary).
 */
interface HugeAddon {
  hugeBuffer(bytes: number): ArrayBuffer | undefined;
  hugeFree(ab: ArrayBuffer, keep?: boolean): boolean;
}

/** Buffers from this size on are made in huge pages (when on). */
export const LARGE = 1 << 20;

let addon: HugeAddon | undefined;
let on = false;
/** A buffer was made here: freeLarge asks the addon. */
let made = false;

/** The addon where huge-page buffers may be made (not with LIFEBOAT_HUGE_BUFFERS=0). */
function hugeAddon(env: NodeJS.ProcessEnv): HugeAddon | undefined {
  if (env.LIFEBOAT_HUGE_BUFFERS === '0') return undefined;
  addon ??= requireAddon<HugeAddon>('mem');
  return typeof addon?.hugeBuffer === 'function' ? addon : undefined;
}

/** Turn huge-page buffers on for this process (false: the addon is missing or LIFEBOAT_HUGE_BUFFERS=0). */
export function useHugeBuffers(env: NodeJS.ProcessEnv = process.env): boolean {
  on = hugeAddon(env) !== undefined;
  return on;
}

function make(a: HugeAddon, bytes: number): Buffer | undefined {
  const ab = a.hugeBuffer(bytes);
  if (!ab) return undefined;
  made = true;
  return Buffer.from(ab);
}

/** A buffer of `bytes` in huge pages, or undefined (off, smaller than LARGE, or it could not be made): the caller allocates as usual. */
export function largeBuffer(bytes: number): Buffer | undefined {
  if (!on || !(bytes >= LARGE)) return undefined;
  return make(addon!, bytes);
}

/** The same whether or not huge-page buffers were turned on (see above); undefined where they cannot be made. */
export function hugeBuffer(bytes: number, env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  if (!(bytes >= LARGE)) return undefined;
  const a = hugeAddon(env);
  return a ? make(a, bytes) : undefined;
}

/**
 * Free a buffer largeBuffer or hugeBuffer made now (detached: nothing may use it afterwards); false for any
 * other buffer (left as it is). Where huge-page buffers were turned on (a files restore), its mapping is kept
 * (up to 4 of ≤ 8 MiB, native/mem.c) for the next buffer of the same number of 2 MiB pages: no new mapping,
 * page fault and zeroing per loose load. The bytes of such a reused buffer are not zeroed (as Buffer.allocUnsafe).
 */
export function freeLarge(ab: ArrayBuffer): boolean {
  return made && ab.byteLength >= LARGE && addon!.hugeFree(ab, on);
}
