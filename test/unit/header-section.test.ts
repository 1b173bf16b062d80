// HeaderCollector (src/header-section.ts) against the plain reading it replaces: join every
// byte, find the first CRLF CRLF (or a CRLF at the very start). Same section and body start for
// any way the bytes are cut into chunks, blank line split across chunks included.
import { HeaderCollector, HeaderSection } from '../../src/header-section';
import { Rejection } from '../../src/policy/rejection';

function reference(all: Buffer): HeaderSection {
  if (all.subarray(0, 2).toString() === '\r\n') return { section: all.subarray(0, 2), bodyStart: all.subarray(2) };
  const end = all.indexOf('\r\n\r\n');
  if (end !== -1) return { section: all.subarray(0, end + 4), bodyStart: all.subarray(end + 4) };
  const tail = all.length === 0 || all.subarray(-2).toString() === '\r\n' ? '\r\n' : '\r\n\r\n';
  return { section: Buffer.concat([all, Buffer.from(tail)]), bodyStart: Buffer.alloc(0) };
}

/** Feeds the chunks; returns the section and everything after it (bodyStart + later chunks). */
function collect(chunks: Buffer[], maxSize = 1 << 20): { section: string; rest: string } {
  const c = new HeaderCollector(maxSize);
  for (let i = 0; i < chunks.length; i++) {
    const found = c.push(chunks[i]);
    if (found) return { section: found.section.toString('latin1'), rest: Buffer.concat([found.bodyStart, ...chunks.slice(i + 1)]).toString('latin1') };
  }
  const { section, bodyStart } = c.finish();
  return { section: section.toString('latin1'), rest: bodyStart.toString('latin1') };
}

function cutAt(all: Buffer, cuts: number[]): Buffer[] {
  const points = [0, ...cuts.filter((c) => c > 0 && c < all.length).sort((a, b) => a - b), all.length];
  return points.slice(1).map((p, i) => all.subarray(points[i], p));
}

const MESSAGES = [
  'From: a@example.org\r\nTo: b@dest.test\r\nSubject: hi\r\n\r\nbody\r\n',
  '\r\nbody after an empty header section\r\n',
  '\r\n\r\nbody\r\n',
  'Subject: no body\r\n',
  'Subject: no body, no CRLF',
  'Subject: x\r\n\r\n',
  'A: 1\r\n\r\n\r\n\r\nB: not a header\r\n',
  '',
  'X',
];

test.each(MESSAGES)('every cut into two or three chunks gives the plain reading: %j', (text) => {
  const all = Buffer.from(text, 'latin1');
  const want = reference(all);
  const expected = { section: want.section.toString('latin1'), rest: want.bodyStart.toString('latin1') };
  for (let i = 0; i <= all.length; i++) {
    for (let j = i; j <= all.length; j++) {
      expect(collect(cutAt(all, [i, j]))).toEqual(expected);
    }
  }
  // byte by byte, with empty chunks in between
  const bytes = [...all].flatMap((b) => [Buffer.from([b]), Buffer.alloc(0)]);
  expect(collect(bytes)).toEqual(expected);
});

test('random messages cut at random places give the plain reading', () => {
  let seed = 15;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pieces = ['\r\n', '\r\n\r\n', 'Subject: x', ' y', ':', '\r', '\n', 'ab'];
  for (let round = 0; round < 2000; round++) {
    const text = Array.from({ length: random(12) }, () => pieces[random(pieces.length)]).join('');
    const all = Buffer.from(text, 'latin1');
    const cuts = Array.from({ length: random(6) }, () => random(all.length + 1));
    const want = reference(all);
    expect(collect(cutAt(all, cuts))).toEqual({ section: want.section.toString('latin1'), rest: want.bodyStart.toString('latin1') });
  }
});

test('a header section over the limit is refused with 552 5.3.4 naming the setting, in small chunks as in one', () => {
  const header = Buffer.from(`Subject: ${'x'.repeat(200)}\r\n\r\nbody`, 'latin1');
  for (const size of [1, 7, 40, header.length]) {
    expect(() => collect(cutAt(header, Array.from({ length: Math.ceil(header.length / size) }, (_, i) => i * size)), 100)).toThrow(Rejection);
  }
  try {
    collect([header], 100);
  } catch (err) {
    expect((err as Rejection).responseCode).toBe(552);
    expect((err as Error).message).toMatch(/^5\.3\.4 the header section is larger than 100 bytes.*RELAY_MAX_HEADER_SIZE/);
  }
  // exactly at the limit (blank line included) is accepted; one more byte is not
  const exact = Buffer.from('Subject: abc\r\n\r\n', 'latin1');
  expect(collect([exact], exact.length).section).toBe(exact.toString('latin1'));
  expect(() => collect([exact], exact.length - 1)).toThrow(Rejection);
  // without a blank line, at the end of DATA
  expect(() => collect([Buffer.from('Subject: abcdef')], 10)).toThrow(Rejection);
});

test('collecting is linear: 1 MB in 40-byte chunks joins the chunks once', () => {
  const chunk = Buffer.from(`X-Filler: ${'x'.repeat(28)}\r\n`, 'latin1'); // 40 bytes
  const c = new HeaderCollector(2 << 20);
  const concat = jest.spyOn(Buffer, 'concat');
  try {
    for (let i = 0; i < 25_000; i++) expect(c.push(chunk)).toBeNull();
    const found = c.push(Buffer.from('\r\nbody'));
    expect(found?.section.length).toBe(25_000 * 40 + 2);
    // one small join per chunk (the 3 bytes before it + its first 3) and one of everything
    const big = concat.mock.calls.filter(([list]) => list.reduce((n, b) => n + b.length, 0) > 64);
    expect(big.length).toBe(1);
  } finally {
    concat.mockRestore();
  }
});
