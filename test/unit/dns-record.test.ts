import crypto from 'node:crypto';
import {
  dkimRecordValue, domainNameProblem, normalizeDomainName, parseRecordValue, recordName, zoneFileRecord,
} from '../../src/dkim/dns-record';

const rsa2048 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa4096 = crypto.generateKeyPairSync('rsa', { modulusLength: 4096 });
const ed = crypto.generateKeyPairSync('ed25519');

test('RSA: p= is the base64 SPKI DER of the public key', () => {
  const value = dkimRecordValue(rsa2048.publicKey);
  const spki = rsa2048.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  expect(value).toBe(`v=DKIM1; k=rsa; p=${spki}`);
  expect(dkimRecordValue(rsa2048.privateKey)).toBe(value); // the public half of a private key
  const back = crypto.createPublicKey({ key: Buffer.from(parseRecordValue(value).p, 'base64'), format: 'der', type: 'spki' });
  expect(back.equals(rsa2048.publicKey)).toBe(true);
});

test('Ed25519: p= is the raw 32-byte key (RFC 8463), the end of the SPKI DER', () => {
  const value = dkimRecordValue(ed.publicKey);
  expect(value).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
  const raw = Buffer.from(parseRecordValue(value).p, 'base64');
  expect(raw).toHaveLength(32);
  expect(raw.equals(ed.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32))).toBe(true);
});

test('other key types are refused', () => {
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  expect(() => dkimRecordValue(ec.publicKey)).toThrow(/ec key cannot be published/);
});

test('the zone-file line pastes into BIND: one line, quoted strings of at most 255 characters', () => {
  const value = dkimRecordValue(rsa4096.publicKey);
  const line = zoneFileRecord('s1', 'example.org', value);
  expect(line).not.toContain('\n');
  expect(line.startsWith('s1._domainkey.example.org. 3600 IN TXT ( "v=DKIM1; k=rsa; p=')).toBe(true);
  expect(line.endsWith('" )')).toBe(true);
  const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  expect(strings.length).toBeGreaterThanOrEqual(3);
  for (const s of strings) expect(s.length).toBeLessThanOrEqual(255);
  expect(strings.join('')).toBe(value);
  expect(zoneFileRecord('s1', 'example.org', value, 300)).toMatch(/^s1\._domainkey\.example\.org\. 300 IN TXT /);
  expect(recordName('s1', 'example.org')).toBe('s1._domainkey.example.org');
});

test('parseRecordValue takes the zone line, the quoted strings, or the bare value', () => {
  for (const { publicKey } of [rsa2048, rsa4096, ed]) {
    const value = dkimRecordValue(publicKey);
    const line = zoneFileRecord('sel', 'example.org', value);
    const expected = parseRecordValue(value);
    expect(parseRecordValue(line)).toEqual(expected);
    expect(parseRecordValue(line).p).toBe(value.split('p=')[1]);
    // one string per line inside the parentheses, as many DNS tools print it
    const multiline = line.replace(/" "/g, '"\n\t\t"').replace('( ', '(\n\t\t').replace(' )', '\n)');
    expect(parseRecordValue(multiline)).toEqual(expected);
  }
  const tags = parseRecordValue('v=DKIM1;k=rsa; t=s ; h=sha256; p=MIIB IjAN\r\n  Bgkq');
  expect(tags).toEqual({ v: 'DKIM1', k: 'rsa', t: 's', h: 'sha256', p: 'MIIBIjANBgkq' });
  expect(parseRecordValue('v=DKIM1; p=').p).toBe(''); // revoked key
  expect(parseRecordValue('"v=DKIM1; k=rsa; " "p=AB\\"CD"').p).toBe('AB"CD');
});

test('parseRecordValue says what is wrong with a text that is no key record', () => {
  expect(() => parseRecordValue('v=spf1 -all')).toThrow(/v=spf1 -all: it is not a DKIM key record/);
  expect(() => parseRecordValue('hello world')).toThrow(/not a tag=value pair/);
  expect(() => parseRecordValue('v=DKIM1; k=rsa')).toThrow(/no p= tag/);
  expect(() => parseRecordValue('v=DKIM1; p=AA; p=BB')).toThrow(/p= twice/);
  expect(() => parseRecordValue('x IN TXT ( "v=DKIM1; p=AA )')).toThrow(/closing quote/);
});

test('domain names', () => {
  expect(normalizeDomainName(' Example.ORG. ')).toBe('example.org');
  for (const ok of ['example.org', 'mail.example.co.uk', 'xn--bcher-kva.example', 'a1-b.example']) {
    expect(domainNameProblem(ok)).toBeNull();
  }
  expect(domainNameProblem('')).toMatch(/empty/);
  expect(domainNameProblem('localhost')).toMatch(/no dot/);
  expect(domainNameProblem('a..example')).toMatch(/empty label/);
  expect(domainNameProblem('-a.example')).toMatch(/not a domain name/);
  expect(domainNameProblem('a_b.example')).toMatch(/not a domain name/);
  expect(domainNameProblem('../etc')).toMatch(/empty label|not a domain name/);
  expect(domainNameProblem('bücher.example')).toMatch(/xn--/);
  expect(domainNameProblem(`${'a'.repeat(64)}.example`)).toMatch(/longer than 63/);
});
