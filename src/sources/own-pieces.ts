import type { Readable } from 'node:stream';

/**
 * Pieces of a stream that its consumer may free as soon as it is done with them
 * (sources/stream.ts StreamMeter: once the chunker and the stream hash are past
 * a piece, Repository.release), instead of leaving them to V8's collector, which
 * lets ~64 MB of such buffers build up before it collects them.
 *
 * Only a producer can say that nothing else keeps or reuses a piece: a whole
 * stream (every piece it yields is a buffer of its own, e.g. a tool's stdout as
 * libuv read it) or one piece at a time (e.g. the file data of a direct base
 * backup, beside shared constants such as the tar's end blocks, which must never
 * be freed).
 */
const streams = new WeakSet<Readable>();
const pieces = new WeakSet<Buffer>();

/** Every piece `stream` yields is its consumer's to free. */
export function giveStreamPieces(stream: Readable): void {
  streams.add(stream);
}

/** `piece` (a buffer of its own that the producer will not touch again) is its consumer's to free. */
export function givePiece(piece: Buffer): Buffer {
  pieces.add(piece);
  return piece;
}

/** True when `stream`'s consumer may free every piece it reads from it. */
export function streamPiecesGiven(stream: Readable): boolean {
  return streams.has(stream);
}

/** True when this piece was given (givePiece). */
export function pieceGiven(piece: Buffer): boolean {
  return pieces.has(piece);
}
