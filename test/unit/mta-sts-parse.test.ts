// The MTA-STS record and policy parsers and the MX matcher (src/delivery/mta-sts.ts), checked
// against RFC 8461's examples and against mailauth's implementation (lib/mta-sts.js), which
// the relay does not load (see the file's head) but which serves here as a second opinion.
import fc from 'fast-check';
import { mxMatches, parseStsPolicy, parseStsRecord, StsPolicyError } from '../../src/delivery/mta-sts';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const mailauth = require('mailauth/lib/mta-sts') as {
  parsePolicy(text: string, opts?: { strict?: boolean }): { mode: string; mx?: string[]; maxAge: number };
  validateMx(mx: string, policy: { mode: string; mx: string[] }): { valid: boolean };
};

test('TXT record: the id of the one v=STSv1 record', () => {
  expect(parseStsRecord(['v=STSv1; id=20160831085700Z;'])).toEqual({ id: '20160831085700Z' }); // RFC 8461 3.1
  expect(parseStsRecord(['v=spf1 -all', 'v=STSv1;id=abc'])).toEqual({ id: 'abc' });
  expect(parseStsRecord(['v=STSv1; ext=1; id=abc'])).toEqual({ id: 'abc' });
  expect(parseStsRecord([])).toEqual({ none: 'no v=STSv1 record' });
  expect(parseStsRecord(['v=STSv1; id=a', 'v=STSv1; id=b'])).toMatchObject({ none: expect.stringMatching(/2 v=STSv1 records/) });
  expect(parseStsRecord(['v=STSv1; id=not-alnum'])).toMatchObject({ none: expect.stringMatching(/not 1-32 letters/) });
  expect(parseStsRecord(['v=STSv1;'])).toEqual({ none: 'the record has no id' });
  expect(parseStsRecord(['v=STSv2; id=a'])).toEqual({ none: 'no v=STSv1 record' });
});

const RFC_EXAMPLE = 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n';

test('policy: RFC 8461 3.2 example, LF line ends, case-insensitive names and modes', () => {
  expect(parseStsPolicy(RFC_EXAMPLE)).toEqual({
    mode: 'enforce', mx: ['mail.example.com', '*.example.net', 'backupmx.example.com'], maxAge: 604800,
    lines: ['version: STSv1', 'mode: enforce', 'mx: mail.example.com', 'mx: *.example.net', 'mx: backupmx.example.com', 'max_age: 604800'],
  });
  expect(parseStsPolicy('version: STSv1\nMode: Testing\nmx: MX.Example.COM.\nmax_age: 0\n')).toMatchObject({ mode: 'testing', mx: ['mx.example.com'], maxAge: 0 });
  expect(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 86400\nfuture_field: x\n')).toMatchObject({ mode: 'none', mx: [] });
});

test.each([
  ['no version', 'mode: enforce\nmx: a.example\nmax_age: 1\n', /version is missing/],
  ['another version', 'version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n', /version is "STSv2"/],
  ['unknown mode', 'version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n', /mode is "strict"/],
  ['max_age too big', 'version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n', /max_age is "31557601"/],
  ['max_age not a number', 'version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n', /max_age is "1d"/],
  ['enforce without mx', 'version: STSv1\nmode: enforce\nmax_age: 1\n', /needs at least one mx/],
  ['a bad mx pattern', 'version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n', /mx "\*\.\*\.example"/],
])('policy refused (%s), and mailauth refuses it too', (_name, text, reason) => {
  expect(() => parseStsPolicy(text)).toThrow(StsPolicyError);
  expect(() => parseStsPolicy(text)).toThrow(reason);
  expect(() => mailauth.parsePolicy(text, { strict: true })).toThrow();
});

test('policy: the same mode, mx and max_age as mailauth (strict) for valid policies', () => {
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
  const host = fc.array(label, { minLength: 2, maxLength: 4 }).map((l) => l.join('.'));
  const pattern = fc.tuple(fc.boolean(), host).map(([wild, h]) => (wild ? `*.${h}` : h));
  fc.assert(fc.property(
    fc.constantFrom('enforce', 'testing'), fc.array(pattern, { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 31557600 }), fc.constantFrom('\r\n', '\n'),
    (mode, mx, maxAge, eol) => {
      const text = ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`, ''].join(eol);
      const ours = parseStsPolicy(text);
      const theirs = mailauth.parsePolicy(text, { strict: true });
      expect({ mode: ours.mode, mx: ours.mx, maxAge: ours.maxAge }).toEqual({ mode: theirs.mode, mx: theirs.mx, maxAge: theirs.maxAge });
    },
  ), { numRuns: 200 });
});

test('MX matching: RFC 8461 4.1 (a wildcard is one whole left-most label)', () => {
  const mx = ['mail.example.com', '*.example.net'];
  expect(mxMatches('mail.example.com', mx)).toBe(true);
  expect(mxMatches('MAIL.Example.com.', mx)).toBe(true);
  expect(mxMatches('mx1.example.net', mx)).toBe(true);
  expect(mxMatches('example.net', mx)).toBe(false);
  expect(mxMatches('a.b.example.net', mx)).toBe(false);
  expect(mxMatches('other.example.com', mx)).toBe(false);
  expect(mxMatches('*.example.net', mx)).toBe(false);
});

test('MX matching agrees with mailauth for random hosts and patterns', () => {
  const label = fc.constantFrom('a', 'b', 'mx', 'mail', 'example', 'net', 'xn--bcher-kva');
  const host = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
  const pattern = fc.tuple(fc.boolean(), host).map(([wild, h]) => (wild ? `*.${h}` : h));
  fc.assert(fc.property(host, fc.array(pattern, { minLength: 1, maxLength: 3 }), (h, patterns) => {
    expect(mxMatches(h, patterns)).toBe(mailauth.validateMx(h, { mode: 'enforce', mx: patterns }).valid);
  }), { numRuns: 500 });
});
