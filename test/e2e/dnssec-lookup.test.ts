// The DNSSEC-aware lookup (src/dns/dnssec-lookup.ts) against Debian's unbound validating a
// signed test root and zones served by NSD (test/helpers/dnssec-dns.ts): the AD bit of
// signed answers, none for an unsigned zone, SERVFAIL for expired and forged signatures,
// TCP after a truncated UDP answer, and the loopback rule for trusting AD at all.
import { DnssecLookup, resolverServers, trustedResolvers } from '../../src/dns/dnssec-lookup';
import { DnssecDns, startDnssecDns } from '../helpers/dnssec-dns';

let dns: DnssecDns;
let lookup: DnssecLookup;

// more TXT data than fits the 1232-byte UDP answer the lookup asks for
const bigTxt = Array.from({ length: 12 }, (_, i) => `big.signed.test. TXT "${String(i).padStart(2, '0')}${'x'.repeat(200)}"`);

beforeAll(async () => {
  dns = await startDnssecDns([
    { name: 'signed.test', dnssec: 'signed', records: ['host.signed.test. A 127.0.0.3', 'forged.signed.test. A 127.0.0.4', ...bigTxt], forge: ['forged.signed.test'] },
    { name: 'unsigned.test', dnssec: 'unsigned', records: ['host.unsigned.test. A 127.0.0.5'] },
    { name: 'expired.test', dnssec: 'expired', records: ['host.expired.test. A 127.0.0.6'] },
  ]);
  lookup = new DnssecLookup(resolverServers([dns.resolver]), 5000);
}, 60_000);

afterAll(async () => {
  await dns?.close();
});

describe('DNSSEC lookup through a validating resolver', () => {
  test('the test root validates: "." DNSKEY comes with AD', async () => {
    const answer = await lookup.query('.', 'DNSKEY');
    expect(answer.rcode).toBe('NOERROR');
    expect(answer.authentic).toBe(true);
    expect(answer.answers.some((a) => a.type === 'DNSKEY')).toBe(true);
  });

  test('a signed zone: the answer and a denial of existence come with AD', async () => {
    const answer = await lookup.query('host.signed.test', 'A');
    expect(answer).toMatchObject({ rcode: 'NOERROR', authentic: true });
    expect(answer.answers.filter((a) => a.type === 'A')).toEqual([expect.objectContaining({ data: '127.0.0.3' })]);
    const none = await lookup.query('nothing.signed.test', 'A');
    expect(none).toMatchObject({ rcode: 'NXDOMAIN', authentic: true });
  });

  test('an unsigned zone: answers without AD', async () => {
    const answer = await lookup.query('host.unsigned.test', 'A');
    expect(answer).toMatchObject({ rcode: 'NOERROR', authentic: false });
    expect(answer.answers).toEqual([expect.objectContaining({ data: '127.0.0.5' })]);
  });

  test('expired signatures and a forged record: SERVFAIL (bogus)', async () => {
    expect(await lookup.query('host.expired.test', 'A')).toMatchObject({ rcode: 'SERVFAIL', authentic: false });
    expect(await lookup.query('forged.signed.test', 'A')).toMatchObject({ rcode: 'SERVFAIL', authentic: false });
  });

  test('an answer too big for UDP is fetched again over TCP', async () => {
    const answer = await lookup.query('big.signed.test', 'TXT');
    expect(answer.authentic).toBe(true);
    expect(answer.answers.filter((a) => a.type === 'TXT')).toHaveLength(12);
  });

  test('a resolver that does not answer: the lookup fails with ETIMEOUT', async () => {
    const silent = new DnssecLookup([{ host: '127.0.0.1', port: 9 }], 500);
    await expect(silent.query('host.signed.test', 'A')).rejects.toBeTruthy();
  });
});

describe('which resolvers the AD bit is believed from', () => {
  test('loopback only', () => {
    expect(trustedResolvers(resolverServers(['127.0.0.1', '127.0.0.53:53', '[::1]:5353']))).toEqual({ ok: true });
    const remote = trustedResolvers(resolverServers(['127.0.0.1', '192.0.2.53']));
    expect(remote).toEqual({ ok: false, reason: expect.stringContaining('192.0.2.53:53 is not on this machine') });
    expect(trustedResolvers(resolverServers(['2001:db8::53']))).toMatchObject({ ok: false });
  });
});
