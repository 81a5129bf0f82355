import type { promises as fsp } from 'node:fs';

/**
 * Read from offset 0 into `buf` until `size` bytes are in or the file ends;
 * returns how many bytes were read (less than `size` only at end of file).
 */
export async function readFully(fh: fsp.FileHandle, buf: Buffer, size: number): Promise<number> {
  let got = 0;
  while (got < size) {
    const { bytesRead } = await fh.read(buf, got, size - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}
