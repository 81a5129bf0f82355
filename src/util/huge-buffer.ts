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
 * as before).
 */
interface HugeAddon {
  hugeBuffer(bytes: number): ArrayBuffer | undefined;
  hugeFree(ab: ArrayBuffer): boolean;
}

/** Buffers from this size on are made in huge pages (when on). */
export const LARGE = 1 << 20;

let addon: HugeAddon | undefined;
let on = false;

/** Turn huge-page buffers on for this process (false: the addon is missing or LIFEBOAT_HUGE_BUFFERS=0). */
export function useHugeBuffers(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.LIFEBOAT_HUGE_BUFFERS === '0') return false;
  addon = requireAddon<HugeAddon>('mem');
  on = typeof addon?.hugeBuffer === 'function';
  return on;
}

/** A buffer of `bytes` in huge pages, or undefined (off, smaller than LARGE, or it could not be made): the caller allocates as usual. */
export function largeBuffer(bytes: number): Buffer | undefined {
  if (!on || !(bytes >= LARGE)) return undefined;
  const ab = addon!.hugeBuffer(bytes);
  return ab ? Buffer.from(ab) : undefined;
}

/** Free a buffer largeBuffer made now (detached: nothing may use it afterwards); false for any other buffer (left as it is). */
export function freeLarge(ab: ArrayBuffer): boolean {
  return on && ab.byteLength >= LARGE && addon!.hugeFree(ab);
}
