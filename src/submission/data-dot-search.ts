// smtp-server reads DATA by looking at every byte in JavaScript for a dot that starts a line
// (the final "." or a stuffed ".."): the largest single item when a big message comes in
// (135-253 ms of CPU for the 50 MB bench message here; 23-48 ms with this shim). This shim
// is smtp-server's SMTPStream._feedDataStream with that one loop replaced by
// Buffer.indexOf("\n."), which visits the same positions in the same order (i from 2 to
// len - 3 where chunk[i - 1] is LF and chunk[i] is a dot). Everything else is smtp-server's
// code as written, SMTP smuggling guards included. test/unit/data-dot-search.test.ts pins
// the original's source (an smtp-server update that changes it fails there: carry the change
// over) and checks that both give the same data on random input cut at random places.
// Installed once, at module load.
import { Writable } from 'node:stream';
import { SMTPStream } from 'smtp-server/lib/smtp-stream';

const END_SEQUENCE = Buffer.from('\r\n.\r\n');
const LF_DOT = Buffer.from('\n.');

type Done = (err?: Error | null) => void;

interface StreamInternals {
  _dataStream: Writable & { destroyed: boolean };
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _countDataBytes(len: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, done: Done): void;
  _feedDataStream(chunk: Buffer, done: Done): void;
}

const proto = SMTPStream.prototype as unknown as StreamInternals & { __dkimRelayOriginalFeed?: StreamInternals['_feedDataStream'] };

/** smtp-server's own _feedDataStream (for the test that compares the two). */
export const smtpServerFeed = proto.__dkimRelayOriginalFeed ?? proto._feedDataStream;

function feedDataStream(this: StreamInternals, input: Buffer, done: Done): void {
  const dataStream = this._dataStream;
  let chunk = input;
  let handled;
  let buf;
  if (this._lastBytes && this._lastBytes.length) {
    chunk = Buffer.concat([this._lastBytes, chunk], this._lastBytes.length + chunk.length);
    this._lastBytes = false;
  }
  let len = chunk.length;
  if (this._atDataStart && len >= 3 && Buffer.compare(chunk.subarray(0, 3), Buffer.from('.\r\n')) === 0) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && len >= 2 && chunk[0] === 0x2e && chunk[1] === 0x2e) {
    chunk = chunk.subarray(1);
    len--;
    this._atDataStart = false;
  }
  // The one change: the next "\n." found natively instead of testing every byte.
  for (let i = chunk.indexOf(LF_DOT, 1) + 1; i > 0 && i < len - 2; i = chunk.indexOf(LF_DOT, i) + 1) {
    if (Buffer.compare(chunk.subarray(i - 2, i + 3), END_SEQUENCE) === 0) {
      buf = chunk.subarray(0, i);
      this._countDataBytes(buf.length);
      this._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === 0x2e) {
      buf = chunk.subarray(0, i);
      this._lastBytes = false;
      this._countDataBytes(buf.length);
      if (dataStream.writable) {
        dataStream.write(buf);
      }
      const rest = chunk.subarray(i + 1);
      setImmediate(() => this._feedDataStream(rest, done));
      return;
    }
  }
  if (chunk.length < 4) {
    this._lastBytes = chunk;
  } else {
    this._lastBytes = chunk.subarray(chunk.length - 4);
  }
  if (this._lastBytes.length < chunk.length) {
    buf = chunk.subarray(0, chunk.length - this._lastBytes.length);
    this._countDataBytes(buf.length);
    if (dataStream.writable) {
      handled = dataStream.write(buf);
      if (!handled && !dataStream.destroyed) {
        const onDrain = () => {
          dataStream.removeListener('drain', onDrain);
          dataStream.removeListener('close', onDrain);
          done();
        };
        dataStream.once('drain', onDrain);
        dataStream.once('close', onDrain);
      } else {
        return done();
      }
    } else {
      return done();
    }
  } else {
    return done();
  }
}

if (!proto.__dkimRelayOriginalFeed) {
  proto.__dkimRelayOriginalFeed = smtpServerFeed;
  proto._feedDataStream = feedDataStream;
}
