import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Writes a stream to a file that must not exist yet (O_EXCL), and settles only
 * when the file is closed: once the promise rejects, nothing will create or
 * write the file any more, and it has been removed.
 *
 * `pipeline(stream, createWriteStream(file))` does not give that: when the
 * source fails before the write stream's asynchronous open has finished, the
 * pipeline rejects first and the open still creates the file afterwards, so a
 * caller's cleanup runs before the file exists and leaves it behind.
 */
export async function streamToNewFile(stream: Readable, file: string, mode = 0o600): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'wx', mode);
  } catch (err) {
    stream.destroy();
    throw err;
  }
  // the write stream owns the handle from here: it closes it when it ends or is destroyed
  const out = fh.createWriteStream();
  try {
    await pipeline(stream, out);
  } catch (err) {
    if (!out.closed) {
      // (not events.once: it rejects on the 'error' the destroyed stream may still emit)
      const closed = new Promise<void>((resolve) => out.once('close', () => resolve()));
      out.destroy();
      await closed;
    }
    await fsp.rm(file, { force: true });
    throw err;
  }
}
