// Line endings are made CRLF before signing, whatever the client sent and however the
// bytes were split into chunks, so that what is signed is what is sent.
import fc from 'fast-check';
import { LineEndings } from '../../src/accept-message';

function run(chunks: Buffer[]): { out: string; longest: number } {
  const le = new LineEndings();
  const parts = chunks.map((c) => le.normalize(c));
  parts.push(le.flush());
  return { out: Buffer.concat(parts).toString('latin1'), longest: le.longestLine };
}

test.each([
  ['a\r\nb\r\n', 'a\r\nb\r\n'],
  ['a\nb\n', 'a\r\nb\r\n'],
  ['a\rb\r', 'a\r\nb\r\n'],
  ['a\r\r\nb', 'a\r\n\r\nb'],
  ['a\n\rb', 'a\r\n\r\nb'],
])('%j becomes %j', (input, expected) => {
  expect(run([Buffer.from(input, 'latin1')]).out).toBe(expected);
});

test('a CRLF split between chunks stays one line ending', () => {
  expect(run([Buffer.from('abc\r'), Buffer.from('\ndef')]).out).toBe('abc\r\ndef');
  expect(run([Buffer.from('abc\r'), Buffer.from('def')]).out).toBe('abc\r\ndef');
});

test('any split of any input gives the same result as one chunk, and only CRLF endings', () => {
  fc.assert(fc.property(
    fc.array(fc.constantFrom('a', 'b', ' ', '\r', '\n', '\r\n', 'xyz'), { maxLength: 60 }).map((p) => p.join('')),
    fc.array(fc.nat(), { maxLength: 5 }),
    (text, cuts) => {
      const buf = Buffer.from(text, 'latin1');
      const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const p of points) {
        chunks.push(buf.subarray(prev, p));
        prev = p;
      }
      chunks.push(buf.subarray(prev));
      const whole = run([buf]);
      const split = run(chunks);
      expect(split).toEqual(whole);
      expect(/\r(?!\n)|(?<!\r)\n/.test(whole.out)).toBe(false);
      const longest = Math.max(0, ...whole.out.split('\r\n').map((l) => l.length));
      expect(whole.longest).toBe(longest);
    }
  ), { numRuns: 2000 });
});
