// The strict From reader on its own: hostile shapes near the size cap end in a reason, never
// in another exception (a 900 KB name of 450,000 words once overflowed the call stack, and
// '=?a' repeated made a backtracking regex take minutes), and the cap itself is explained.
import { AddressSyntaxError, MAX_FIELD_OCTETS, decodeEncodedWords, domainsShownIn, parseMailboxList } from '../../src/policy/from-header';

const fill = (unit: string, tail = '') => unit.repeat(Math.floor((MAX_FIELD_OCTETS - tail.length) / unit.length)) + tail;

test.each([
  ['words', fill('a ', '<a@example.test>')],
  ['encoded-word starts', fill('=?a')],
  ['bare =?', fill('=?')],
  ['open comments', fill('(')],
  ['an unclosed quote', '"' + fill('a').slice(1)],
  ['dots', fill('a.')],
  ['at signs', fill('@')],
  ['brackets', fill('<')],
  ['quoted pairs', '"' + fill('\\a', '"<a@example.test>')],
  ['encoded words', fill('=?utf-8?q?a?= ', '<a@example.test>')],
])('%s up to the size cap: a mailbox or a reason', (_name, value) => {
  const raw = Buffer.from(value);
  expect(raw.length).toBeLessThanOrEqual(MAX_FIELD_OCTETS);
  try {
    expect(parseMailboxList(raw).length).toBeGreaterThan(0);
  } catch (err) {
    expect(err).toBeInstanceOf(AddressSyntaxError);
  }
});

test('a field over the cap is refused with its length', () => {
  expect(() => parseMailboxList(Buffer.from(`${'a'.repeat(MAX_FIELD_OCTETS)} <a@example.test>`))).toThrow(/octets long \(at most 4096\)/);
});

test('encoded words are decoded for the display check, Q and B, adjacent ones joined', () => {
  expect(decodeEncodedWords('=?utf-8?q?x=40other.test?=')).toBe('x@other.test');
  expect(decodeEncodedWords('=?UTF-8?B?eEBvdGhlci50ZXN0?=')).toBe('x@other.test');
  expect(decodeEncodedWords('=?utf-8?q?x?= =?utf-8?q?=40other.test?=')).toBe('x@other.test');
  expect(decodeEncodedWords('=?x-unknown?q?x=40other.test?=')).toBe('x@other.test');
  expect(domainsShownIn('Mail from X@Other.Test. and @ home')).toEqual(['other.test']);
});

test('what a mailbox is read as', () => {
  expect(parseMailboxList(Buffer.from('"Alice (x)" (Sales) <alice@example.test> (old)'))).toEqual([
    { localPart: 'alice', domain: 'example.test', displayText: 'Alice (x) Sales old' },
  ]);
  expect(parseMailboxList(Buffer.from('a@example.test, B <b@example.test>')).map((m) => m.localPart)).toEqual(['a', 'b']);
});
