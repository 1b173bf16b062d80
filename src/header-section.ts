// The header section of an incoming message, collected from the chunks of DATA up to the blank
// line that ends it. In linear time, whatever the chunk sizes: a client that sends its header in
// 40-byte writes must cost what one that sends it in one write does (issue 15: copying all that
// was collected on every chunk cost 14.5 s of CPU for a 1 MB header, bench/HEADER-DRIP.md). The
// chunks are kept as they come and joined once; the blank line (CRLF CRLF) is looked for only
// in the new chunk and the 3 bytes before it.
import { Rejection } from './policy/rejection';

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

export interface HeaderSection {
  /** The header fields and the blank line after them. */
  section: Buffer;
  /** What came after the blank line in the same chunk. */
  bodyStart: Buffer;
}

export class HeaderCollector {
  private chunks: Buffer[] = [];
  private size = 0;
  /** The last (up to) 3 bytes collected: a CRLF CRLF may begin there. */
  private tail: Buffer = Buffer.alloc(0);

  /** maxSize: submission.maxHeaderSize; a longer header section (blank line included) is refused (552 5.3.4). */
  constructor(private readonly maxSize: number) {}

  /**
   * Takes the next chunk (line endings already CRLF). Returns the header section once its
   * blank line is in, null until then. Throws a Rejection once the section is too large.
   */
  push(chunk: Buffer): HeaderSection | null {
    const before = this.size;
    const end = this.findEnd(chunk);
    if (end === -1) {
      this.chunks.push(chunk);
      this.size += chunk.length;
      this.tail = chunk.length >= 3 ? chunk.subarray(chunk.length - 3) : Buffer.concat([this.tail, chunk]).subarray(-3);
      this.checkSize(this.size);
      return null;
    }
    // At 0 only when the message starts with the blank line: an empty header section.
    const split = end === 0 ? 2 : end + 4;
    this.checkSize(split);
    const all = before ? Buffer.concat([...this.chunks, chunk], before + chunk.length) : chunk;
    this.chunks = [];
    return { section: all.subarray(0, split), bodyStart: all.subarray(split) };
  }

  /** At the end of DATA without a blank line: the message is all header, no body. */
  finish(): HeaderSection {
    const all = Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.checkSize(all.length);
    const section = all.length === 0 || all.subarray(-2).equals(CRLF) ? Buffer.concat([all, CRLF]) : Buffer.concat([all, CRLF, CRLF]);
    return { section, bodyStart: Buffer.alloc(0) };
  }

  /** Offset (in all bytes collected) where the blank line's CRLF CRLF starts, or -1. */
  private findEnd(chunk: Buffer): number {
    if (this.startsWithCrlf(chunk)) return 0;
    if (this.tail.length) {
      // only a CRLF CRLF that begins in the tail: one inside the chunk is found below
      const joint = Buffer.concat([this.tail, chunk.subarray(0, 3)]).indexOf(HEADER_END);
      if (joint !== -1 && joint < this.tail.length) return this.size - this.tail.length + joint;
    }
    const inChunk = chunk.indexOf(HEADER_END);
    return inChunk === -1 ? -1 : this.size + inChunk;
  }

  /** Whether the message's first two bytes, once known, are CRLF. */
  private startsWithCrlf(chunk: Buffer): boolean {
    if (this.size >= 2 || this.size + chunk.length < 2) return false;
    return Buffer.concat([...this.chunks, chunk.subarray(0, 2)]).subarray(0, 2).equals(CRLF);
  }

  private checkSize(size: number): void {
    if (size <= this.maxSize) return;
    this.chunks = [];
    throw new Rejection(552, '5.3.4',
      `the header section is larger than ${this.maxSize} bytes; send fewer or shorter header fields, or raise submission.maxHeaderSize (RELAY_MAX_HEADER_SIZE)`);
  }
}
