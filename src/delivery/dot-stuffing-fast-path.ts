// nodemailer's DataStream prepares the DATA body (RFC 5321 4.5.2: a dot starting a line is
// doubled; a bare CR or LF becomes CRLF, which also keeps "\r.\r" smuggling out) by looking
// at every byte in JavaScript: 275-288 ms of CPU for the 50 MB bench message here (54-82 ms
// with this shim), and the largest single item of delivery in the relay's profile at 10 KB.
// The spool holds CRLF text whose lines seldom start with a dot, so this shim first asks
// Buffer.indexOf (memchr) whether a chunk has anything to change at all: a CR not followed
// by LF, an LF not preceded by CR, a dot after a line break or at the start. A chunk with
// none passes through as it is; a chunk with any is handed to nodemailer's own code, so the
// output is always what nodemailer would send (test/unit/dot-stuffing-fast-path.test.ts
// compares both on random input). Installed once, at module load.
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

type Transform = (chunk: Buffer | string, encoding: BufferEncoding, done: (err?: Error | null) => void) => void;
const proto = DataStream.prototype as unknown as DataStream & { _transform: Transform; __dkimRelayNodemailerTransform?: Transform };

/** nodemailer's own transform, which the fast path falls back to. */
export const nodemailerTransform: Transform = proto.__dkimRelayNodemailerTransform ?? proto._transform;

/** True when nodemailer's transform would leave `chunk` as it is, `last` being the byte before it (false: none yet). */
export function needsNoChange(chunk: Buffer, last: number | false): boolean {
  const first = chunk[0];
  if (last === false || last === LF) {
    if (first === DOT) return false;
  } else if (last === CR && first !== LF) {
    return false;
  }
  for (let i = chunk.indexOf(CR); i !== -1; i = chunk.indexOf(CR, i + 1)) {
    if (i + 1 < chunk.length && chunk[i + 1] !== LF) return false;
  }
  for (let i = chunk.indexOf(LF); i !== -1; i = chunk.indexOf(LF, i + 1)) {
    if ((i ? chunk[i - 1] : last) !== CR) return false;
    if (i + 1 < chunk.length && chunk[i + 1] === DOT) return false;
  }
  return true;
}

if (!proto.__dkimRelayNodemailerTransform) {
  proto.__dkimRelayNodemailerTransform = nodemailerTransform;
  proto._transform = function transform(this: DataStream, chunk, encoding, done) {
    if (!Buffer.isBuffer(chunk) || !chunk.length || !needsNoChange(chunk, this.lastByte)) {
      return nodemailerTransform.call(this, chunk, encoding, done);
    }
    this.inByteCount += chunk.length;
    this.outByteCount += chunk.length;
    this.lastByte = chunk[chunk.length - 1];
    this.push(chunk);
    done();
  };
}
