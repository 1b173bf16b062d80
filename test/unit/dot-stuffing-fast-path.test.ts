// src/delivery/dot-stuffing-fast-path.ts lets chunks that need no change skip nodemailer's
// byte-by-byte DataStream transform. Whatever the chunks, the bytes sent (and nodemailer's
// byte counts) must be exactly what nodemailer's own transform gives.
import fc from 'fast-check';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';
import { needsNoChange, nodemailerTransform } from '../../src/delivery/dot-stuffing-fast-path';

interface Output { bytes: Buffer; inByteCount: number; outByteCount: number }

async function run(chunks: Buffer[], withFastPath: boolean): Promise<Output> {
  const stream = new DataStream();
  if (!withFastPath) (stream as unknown as { _transform: unknown })._transform = nodemailerTransform;
  const out: Buffer[] = [];
  stream.on('data', (b: Buffer) => out.push(b));
  const ended = new Promise((resolve) => stream.on('end', resolve));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  return { bytes: Buffer.concat(out), inByteCount: stream.inByteCount, outByteCount: stream.outByteCount };
}

// Mostly the bytes that matter (CR, LF, dot), some text around them.
const byte = fc.constantFrom(0x0d, 0x0a, 0x2e, 0x61, 0x20, 0x0d, 0x0a);
const chunk = fc.array(byte, { maxLength: 24 }).map((a) => Buffer.from(a));
const crlfText = fc.array(fc.constantFrom('line', '.dot', '', 'a.b', '..', ' x'), { maxLength: 8 })
  .map((lines) => Buffer.from(lines.map((l) => l + '\r\n').join('')));

test('the output is nodemailer\'s for any chunks', async () => {
  await fc.assert(fc.asyncProperty(fc.array(fc.oneof(chunk, crlfText), { maxLength: 6 }), async (chunks) => {
    expect(await run(chunks, true)).toEqual(await run(chunks, false));
  }), { numRuns: 2000 });
});

test('clean CRLF text takes the fast path; anything to change does not', () => {
  expect(needsNoChange(Buffer.from('Subject: hi\r\n\r\nbody.\r\n'), false)).toBe(true);
  expect(needsNoChange(Buffer.from('\r\nmore'), 0x2e)).toBe(true);
  expect(needsNoChange(Buffer.from('.starts with a dot\r\n'), false)).toBe(false);
  expect(needsNoChange(Buffer.from('.after a line\r\n'), 0x0a)).toBe(false);
  expect(needsNoChange(Buffer.from('a\r\n.b\r\n'), false)).toBe(false);
  expect(needsNoChange(Buffer.from('bare LF\n'), false)).toBe(false);
  expect(needsNoChange(Buffer.from('bare CR\rx'), false)).toBe(false);
  expect(needsNoChange(Buffer.from('x'), 0x0d)).toBe(false); // the CR ended the last chunk
  expect(needsNoChange(Buffer.from('ends in CR\r'), false)).toBe(true); // decided by the next chunk
});
