// The header side of the DKIM signer (src/dkim/header-fields.ts): parsing the header section,
// relaxed canonicalization (RFC 6376 3.4.2), the fields to sign (5.4) and the folded
// DKIM-Signature field (3.5, 3.7). mailauth's own code, which the module replaces on the
// relay's path, is the reference here: same parse, same canonical bytes, same output.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fc from 'fast-check';
import {
  canonicalSignatureField, fold, formatSignatureField, HeaderField, parseHeaderFields, relaxedField,
  selectSignedFields, SignatureTags,
} from '../../src/dkim/header-fields';
import { OVERSIGNED_HEADERS, SIGNED_HEADERS, signHeaders, SigningError, SigningKey } from '../../src/dkim/signer';
import { ensureBuilt, NODE, ROOT } from '../helpers/built-cli';

// mailauth's internals, as the reference (tests only: the relay does not load them).
interface MailauthField { key: string | null; casedKey: string | undefined; line: Buffer }
const tools = require('mailauth/lib/tools') as {
  parseHeaders(buf: Buffer): { parsed: MailauthField[] };
  formatRelaxedLine(line: Buffer | string, suffix?: string): Buffer;
  getSigningHeaderLines(parsed: MailauthField[], fieldNames: string, verify?: boolean): { keys: string; headers: MailauthField[] };
  formatSignatureHeaderLine(type: 'DKIM', values: Record<string, unknown>, folded: boolean): string;
};
const { generateCanonicalizedHeader } = require('mailauth/lib/dkim/header') as {
  generateCanonicalizedHeader(type: 'DKIM', lines: { keys: string; headers: MailauthField[] }, options: Record<string, unknown>): { canonicalizedHeader: Buffer };
};
const { foldLines } = require('libmime') as { foldLines(str: string, lineLength?: number, afterSpace?: boolean): string };

const bin = (s: string) => Buffer.from(s, 'latin1');
const lines = (fields: HeaderField[]) => fields.map((f) => f.line.toString('latin1'));

describe('parseHeaderFields', () => {
  it('keeps folded continuation lines in their field, without the final line break', () => {
    const fields = parseHeaderFields(bin('Subject: a long\r\n subject\r\n\tfolded\r\nTo: b@example.net\r\n'));
    expect(fields.map((f) => f.key)).toEqual(['subject', 'to']);
    expect(lines(fields)).toEqual(['Subject: a long\r\n subject\r\n\tfolded', 'To: b@example.net']);
  });

  it('lower cases the name for key and keeps it as written in casedKey', () => {
    const [a, b, c] = parseHeaderFields(bin('X-MiXeD-CaSe:value\r\nSUBJECT : x\r\nFrom\r\n : a@example.org'));
    expect([a.key, a.casedKey]).toEqual(['x-mixed-case', 'X-MiXeD-CaSe']);
    // whitespace, or a fold, between the name and the colon is not part of the name
    expect([b.key, b.casedKey]).toEqual(['subject', 'SUBJECT']);
    expect([c.key, c.casedKey, c.line.toString('latin1')]).toEqual(['from', 'From', 'From\r\n : a@example.org']);
  });

  it('keeps 8-bit bytes as they are, and a line that opens no field joins the one above', () => {
    const section = Buffer.from('Subject: Grüße ✓\r\n\u00a0nbsp-led line\r\nTo: "Zoë" <u@example.net>', 'utf8');
    const fields = parseHeaderFields(section);
    expect(fields.map((f) => f.key)).toEqual(['subject', 'to']);
    expect(fields[0].line).toEqual(Buffer.from('Subject: Grüße ✓\r\n\u00a0nbsp-led line', 'utf8'));
    expect(fields[1].line).toEqual(Buffer.from('To: "Zoë" <u@example.net>', 'utf8'));
    // only A-Z are lower cased: a latin1 reading of 0xC4 must not become 0xE4
    expect(parseHeaderFields(bin('X-\xc4: 1'))[0].key).toBe('x-\xc4');
  });

  it('reads a last field without CRLF, LF line endings, and an empty section', () => {
    expect(lines(parseHeaderFields(bin('From: a@example.org\r\nTo: b@example.net')))).toEqual(['From: a@example.org', 'To: b@example.net']);
    expect(lines(parseHeaderFields(bin('From: a@example.org\nSubject: x\n y\n')))).toEqual(['From: a@example.org', 'Subject: x\r\n y']);
    expect(parseHeaderFields(Buffer.alloc(0))).toEqual([]);
    expect(parseHeaderFields(bin('\r\n'))).toEqual([]);
  });

  it('gives a first line that is no field no colon (or no key), for the policy to refuse', () => {
    const [first, second] = parseHeaderFields(bin('garbage line\r\nFrom: a@example.org'));
    expect([first.key, first.line.includes(0x3a)]).toEqual(['garbage line', false]);
    expect(second.key).toBe('from');
    expect(parseHeaderFields(bin(': no name\r\nFrom: a@example.org'))[0].key).toBe('');
  });

  it('parses exactly as mailauth parseHeaders did (generated sections)', () => {
    const piece = fc.constantFrom('From', 'to', 'X-A', ':', ': ', ' ', '\t', '\r\n', '\n', '\r', 'v', '\xe4', '\xc2\xa0', ';', '=', 'Subject ');
    fc.assert(fc.property(fc.array(piece, { maxLength: 40 }).map((p) => p.join('')), (text) => {
      const ours = parseHeaderFields(bin(text));
      const theirs = tools.parseHeaders(bin(text)).parsed;
      expect(ours.map((f) => [f.key, f.casedKey, f.line.toString('latin1')]))
        .toEqual(theirs.map((f) => [f.key ?? '', f.casedKey ?? '', f.line.toString('latin1')]));
    }), { numRuns: 3000 });
  });
});

describe('relaxedField (RFC 6376 3.4.2)', () => {
  it('gives the RFC 6376 3.4.5 example', () => {
    // "A: X" and "B : Y<HTAB><CRLF><HTAB>Z<SP><SP>" become "a:X" and "b:Y Z"
    const fields = parseHeaderFields(bin('A: X\r\nB : Y\t\r\n\tZ  \r\n'));
    expect(fields.map((f) => relaxedField(f.line))).toEqual(['a:X', 'b:Y Z']);
  });

  it('lower cases only the name, collapses whitespace runs, keeps 8-bit bytes', () => {
    expect(relaxedField('SUBJECT:\t Hello   World \t ')).toBe('subject:Hello World');
    expect(relaxedField('Subject:')).toBe('subject:');
    expect(relaxedField(bin('Subject: Gr\xc3\xbc\xc3\x9fe  Caf\xc3\xa9'))).toBe('subject:Gr\xc3\xbc\xc3\x9fe Caf\xc3\xa9');
  });

  it('canonicalizes exactly as mailauth formatRelaxedLine did (generated fields)', () => {
    const piece = fc.constantFrom('From', 'A', 'b', ':', ' ', '  ', '\t', '\r\n ', '\r\n\t', '\n ', '\r', 'x y', '\xe4', '\xc3\x9f', ';');
    fc.assert(fc.property(fc.array(piece, { maxLength: 30 }).map((p) => p.join('')), (text) => {
      expect(relaxedField(bin(text))).toBe(tools.formatRelaxedLine(bin(text)).toString('latin1'));
    }), { numRuns: 3000 });
  });
});

describe('selectSignedFields (RFC 6376 5.4)', () => {
  const section = bin('Received: x\r\nFrom: a@example.org\r\nTo: 1@example.net\r\nX-Other: y\r\nsubject: s\r\nTO: 2@example.net\r\n');
  const fields = parseHeaderFields(section);

  it('takes repeated fields bottom-up and names them as written', () => {
    const selected = selectSignedFields(fields, ['From', 'To', 'Subject']);
    expect(selected.names).toEqual(['TO', 'subject', 'To', 'From']);
    expect(lines(selected.fields)).toEqual(['TO: 2@example.net', 'subject: s', 'To: 1@example.net', 'From: a@example.org']);
  });

  it('adds the oversigned names once more to h=, with no field for them', () => {
    const selected = selectSignedFields(fields, ['From', 'To'], ['From', 'Cc']);
    expect(selected.names).toEqual(['TO', 'To', 'From', 'From', 'Cc']);
    expect(selected.fields).toHaveLength(3);
  });

  it('selects what mailauth getSigningHeaderLines did', () => {
    const theirs = tools.getSigningHeaderLines(tools.parseHeaders(section).parsed, SIGNED_HEADERS.join(':'));
    const ours = selectSignedFields(fields, SIGNED_HEADERS);
    expect(ours.names.join(': ')).toBe(theirs.keys);
    expect(lines(ours.fields)).toEqual(theirs.headers.map((h) => h.line.toString('latin1')));
  });
});

describe('the DKIM-Signature field', () => {
  const tags: SignatureTags = {
    algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed', domain: 'example.org', selector: '20260101-rsa',
    headers: ['Subject', 'To', 'From', ...OVERSIGNED_HEADERS], timestamp: 1795000000, bodyHash: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
  };
  const b = crypto.randomBytes(512).toString('base64'); // an RSA-4096 signature: 684 characters

  it('folds a long b= into 75-character pieces, every line under 998 octets and folded with CRLF + space', () => {
    const field = formatSignatureField(tags, b);
    const rows = field.split('\r\n');
    expect(rows.slice(1).every((r) => r.startsWith(' '))).toBe(true);
    expect(rows.every((r) => r.length <= 76 && !r.includes('\r') && !r.includes('\n'))).toBe(true);
    const bRows = rows.slice(rows.findIndex((r) => r.startsWith(' b=')));
    expect(bRows.slice(0, -1).every((r) => r.length === 76)).toBe(true);
    expect(bRows.join('').replace(/ /g, '')).toBe(`b=${b}`);
    expect(field.startsWith('DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;\r\n h=Subject: To: From: From:')).toBe(true);
  });

  it('is byte for byte what mailauth formatSignatureHeaderLine wrote', () => {
    for (const sig of [b, b.slice(0, 88), b.slice(0, 73), b.slice(0, 148)]) {
      const theirs = tools.formatSignatureHeaderLine('DKIM', {
        a: tags.algorithm, c: tags.canonicalization, s: tags.selector, d: tags.domain, h: tags.headers.join(': '),
        bh: tags.bodyHash, t: tags.timestamp, b: sig,
      }, true);
      expect(formatSignatureField(tags, sig)).toBe(theirs);
    }
  });

  it('hashes itself relaxed, with an empty b= and no CRLF (RFC 6376 3.7)', () => {
    const emitted = formatSignatureField(tags, b);
    const canonical = canonicalSignatureField(tags);
    expect(canonical).toBe(relaxedField(emitted).replace(/ b=[^;]*$/, ' b='));
    expect(canonical.endsWith('; b=')).toBe(true);
    expect(canonical.startsWith('dkim-signature:v=1; a=rsa-sha256;')).toBe(true);
  });

  it('refuses a d= or s= that cannot be a DNS name, and writes a U-label as an A-label', () => {
    expect(() => formatSignatureField({ ...tags, selector: 'a b' }, b)).toThrow(/s=/);
    expect(() => formatSignatureField({ ...tags, selector: 'a;b' }, b)).toThrow(/s=/);
    expect(formatSignatureField({ ...tags, domain: 'bücher.example' }, '', false)).toContain(' d=xn--bcher-kva.example;');
  });

  it('folds as libmime foldLines did (generated lines)', () => {
    const word = fc.stringMatching(/^[a-z=;:+/]{0,90}$/);
    fc.assert(fc.property(fc.array(fc.tuple(word, fc.constantFrom(' ', '  ', '\t', ' \t')), { maxLength: 30 }), (parts) => {
      const text = parts.map(([w, s]) => w + s).join('').trim();
      expect(fold(text, 76)).toBe(foldLines(text, 76));
    }), { numRuns: 2000 });
  });
});

describe('signHeaders', () => {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = crypto.generateKeyPairSync('ed25519');
  const keys: SigningKey[] = [
    { domain: 'example.org', selector: 'rsa1', algorithm: 'rsa', privateKey: rsa.privateKey },
    { domain: 'example.org', selector: 'ed1', algorithm: 'ed25519', privateKey: ed.privateKey },
  ];
  const publicKeys: Record<string, crypto.KeyObject> = { rsa1: rsa.publicKey, ed1: ed.publicKey };
  const section = Buffer.from([
    'From: "Jürgen" <a@example.org>',
    'to: b@example.net',
    'Subject: a subject folded over\r\n two lines\t ',
    'X-Not-Signed: x',
    'Date: Sat, 28 Nov 2026 02:00:00 +0000',
    'MIME-Version: 1.0',
  ].join('\r\n'), 'utf8');

  it('makes signatures that verify over mailauth\'s canonicalization of the message and of the emitted field', async () => {
    const out = await signHeaders(parseHeaderFields(section), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', keys, new Date(1795000000000));
    expect(out.endsWith('\r\n')).toBe(true);
    const signatures = tools.parseHeaders(bin(out)).parsed;
    expect(signatures.map((s) => s.key)).toEqual(['dkim-signature', 'dkim-signature']);
    const parsed = tools.parseHeaders(section).parsed;
    for (const signature of signatures) {
      const value = relaxedField(signature.line);
      const tag = (name: string) => new RegExp(`[:;] ?${name}=([^;]*)`).exec(value)![1];
      expect(tag('h')).toBe('MIME-Version: Date: Subject: to: From: From: Subject: Date: To: Cc: Reply-To: Message-ID');
      expect(tag('t')).toBe('1795000000');
      // the verifier's view: h= taken bottom-up, the received field with b= emptied
      const { canonicalizedHeader } = generateCanonicalizedHeader('DKIM', tools.getSigningHeaderLines(parsed, tag('h'), true), {
        canonicalization: 'relaxed/relaxed', signatureHeaderLine: signature.line.toString('latin1'),
      });
      const sig = Buffer.from(tag('b').replace(/ /g, ''), 'base64');
      const selector = tag('s');
      const ok = selector === 'rsa1'
        ? crypto.verify('sha256', canonicalizedHeader, publicKeys.rsa1, sig)
        : crypto.verify(null, crypto.createHash('sha256').update(canonicalizedHeader).digest(), publicKeys.ed1, sig);
      expect([selector, ok]).toEqual([selector, true]);
    }
  });

  it('refuses a message without From, and a key whose selector cannot be written', async () => {
    await expect(signHeaders(parseHeaderFields(bin('To: b@example.net')), 'x', keys)).rejects.toThrow(SigningError);
    await expect(signHeaders(parseHeaderFields(section), 'x', [{ ...keys[0], selector: 'bad selector' }])).rejects.toThrow(SigningError);
  });
});

it('the relay (dist/relay.js) loads no mailauth/lib/tools, libmime, tldts or joi', () => {
  ensureBuilt();
  const script = "require('./dist/relay');console.log(JSON.stringify(Object.keys(require.cache)))";
  const loaded = JSON.parse(execFileSync(NODE, ['-e', script], { cwd: ROOT, encoding: 'utf8' })) as string[];
  expect(loaded.filter((file) => /mailauth\/lib\/tools|\/node_modules\/(libmime|tldts|joi)\//.test(file))).toEqual([]);
  expect(loaded.some((file) => file.includes('mailauth/lib/dkim/body'))).toBe(true);
});
