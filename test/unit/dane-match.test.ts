// TLSA matching (src/delivery/tls-policy/dane-match.ts) on real certificates: DANE-EE pins
// the server's own certificate or key whatever its names and dates; DANE-TA pins an issuer
// in the chain (or a bare key), and then the chain, the dates and the name must hold.
import { X509Certificate } from 'node:crypto';
import { isUsable, matchChain, TlsaRecord } from '../../src/delivery/tls-policy/dane-match';
import { makeCertificate, TestCert, tlsaData } from '../helpers/dane-certificates';

const x = (c: TestCert) => new X509Certificate(c.der);
const record = (usage: number, selector: 0 | 1, matchingType: 0 | 1 | 2, cert: TestCert): TlsaRecord => ({
  usage, selector, matchingType, data: Buffer.from(tlsaData(cert, selector, matchingType), 'hex'),
});

const ca = makeCertificate({ names: ['Test CA'], ca: true });
const otherCa = makeCertificate({ names: ['Other CA'], ca: true });
const leaf = makeCertificate({ names: ['mx1.dane.test'], issuer: ca });
const wrongName = makeCertificate({ names: ['elsewhere.test'], issuer: ca });
const expired = makeCertificate({ names: ['mx1.dane.test'], issuer: ca, notBefore: new Date('2020-01-01'), notAfter: new Date('2021-01-01') });
const selfSigned = makeCertificate({ names: ['not-the-host.example'], notBefore: new Date('2020-01-01'), notAfter: new Date('2021-01-01') });
const fromOtherCa = makeCertificate({ names: ['mx1.dane.test'], issuer: otherCa });

describe('DANE-EE (3)', () => {
  test.each([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]] as const)('3 %i %i matches the server certificate, names and dates aside', (selector, matchingType) => {
    const result = matchChain([x(selfSigned)], [record(3, selector, matchingType, selfSigned)], ['mx1.dane.test']);
    expect(result).toEqual({ ok: true, matched: expect.stringMatching(new RegExp(`^3 ${selector} ${matchingType} `)) });
  });

  test('a record of another certificate: tlsa-invalid', () => {
    const result = matchChain([x(leaf)], [record(3, 1, 1, selfSigned)], ['mx1.dane.test']);
    expect(result).toEqual({ ok: false, result: 'tlsa-invalid', reason: expect.stringContaining('no TLSA record matches') });
  });

  test('one matching record among others is enough', () => {
    expect(matchChain([x(leaf)], [record(3, 1, 1, selfSigned), record(3, 1, 2, leaf)], ['mx1.dane.test']).ok).toBe(true);
  });
});

describe('DANE-TA (2)', () => {
  test('2 0 1 of the CA in the chain, server certificate naming the MX host: matches', () => {
    expect(matchChain([x(leaf), x(ca)], [record(2, 0, 1, ca)], ['mx1.dane.test'])).toMatchObject({ ok: true });
  });

  test('the TLSA base name counts as a name too', () => {
    expect(matchChain([x(wrongName), x(ca)], [record(2, 1, 1, ca)], ['mx1.dane.test', 'elsewhere.test'])).toMatchObject({ ok: true });
  });

  test('a server certificate for another name: certificate-host-mismatch', () => {
    expect(matchChain([x(wrongName), x(ca)], [record(2, 0, 1, ca)], ['mx1.dane.test'])).toMatchObject({ ok: false, result: 'certificate-host-mismatch' });
  });

  test('an expired server certificate: certificate-expired', () => {
    expect(matchChain([x(expired), x(ca)], [record(2, 0, 1, ca)], ['mx1.dane.test'])).toMatchObject({ ok: false, result: 'certificate-expired' });
  });

  test('the CA sent but the server certificate not issued by it: no match', () => {
    expect(matchChain([x(fromOtherCa), x(ca)], [record(2, 0, 1, ca)], ['mx1.dane.test'])).toMatchObject({ ok: false, result: 'tlsa-invalid' });
  });

  test('the CA not in the chain: no match for 2 0 1', () => {
    expect(matchChain([x(leaf)], [record(2, 0, 1, ca)], ['mx1.dane.test'])).toMatchObject({ ok: false, result: 'tlsa-invalid' });
  });

  test('2 1 0, the CA\'s bare key: matches a chain without the CA certificate', () => {
    expect(matchChain([x(leaf)], [record(2, 1, 0, ca)], ['mx1.dane.test'])).toMatchObject({ ok: true });
    expect(matchChain([x(fromOtherCa)], [record(2, 1, 0, ca)], ['mx1.dane.test'])).toMatchObject({ ok: false });
  });

  test('a TA record does not match the server certificate itself', () => {
    expect(matchChain([x(selfSigned)], [record(2, 0, 1, selfSigned)], ['not-the-host.example'])).toMatchObject({ ok: false });
  });
});

describe('usable records', () => {
  test('PKIX-TA (0), PKIX-EE (1) and unknown parameters are unusable for SMTP', () => {
    expect(isUsable(record(0, 0, 1, ca))).toBe(false);
    expect(isUsable(record(1, 1, 1, leaf))).toBe(false);
    expect(isUsable({ usage: 3, selector: 2, matchingType: 1, data: Buffer.alloc(32) })).toBe(false);
    expect(isUsable({ usage: 3, selector: 1, matchingType: 3, data: Buffer.alloc(32) })).toBe(false);
    expect(isUsable(record(3, 1, 1, leaf))).toBe(true);
    expect(isUsable(record(2, 0, 2, ca))).toBe(true);
    // unusable records never authenticate, even when their data would match
    expect(matchChain([x(leaf)], [record(1, 1, 1, leaf)], ['mx1.dane.test']).ok).toBe(false);
  });
});
