// What DANE decides for an MX host (src/delivery/tls-policy/dane.ts), asked of Debian's
// unbound validating the signed test DNS (test/helpers/dnssec-dns.ts): the chain from the
// recipient domain's MX to the host's address to its TLSA records must be validated for
// DANE to apply (RFC 7672 2.2.1, 2.2.2); a failed validation anywhere defers the host.
import { Dane } from '../../src/delivery/tls-policy/dane';
import { DnssecDns, startDnssecDns } from '../helpers/dnssec-dns';

let dns: DnssecDns;
let dane: Dane;
const EE = `3 1 1 ${'ab'.repeat(32)}`;

beforeAll(async () => {
  dns = await startDnssecDns([
    {
      name: 'signed.test',
      dnssec: 'signed',
      records: [
        'a.signed.test. MX 10 mx.signed.test.', 'mx.signed.test. A 127.0.0.3', `_25._tcp.mx.signed.test. TLSA ${EE}`,
        'b.signed.test. MX 10 mx.unsigned.test.',
        'c.signed.test. MX 10 plain.signed.test.', 'plain.signed.test. A 127.0.0.4',
        'd.signed.test. MX 10 pkix.signed.test.', 'pkix.signed.test. A 127.0.0.5', `_25._tcp.pkix.signed.test. TLSA 1 1 1 ${'cd'.repeat(32)}`,
        'e.signed.test. MX 10 mx.expired.test.',
        'f.signed.test. MX 10 forged.signed.test.', 'forged.signed.test. A 127.0.0.6',
      ],
      forge: ['forged.signed.test'],
    },
    {
      name: 'unsigned.test',
      dnssec: 'unsigned',
      records: ['a.unsigned.test. MX 10 mx.signed.test.', 'mx.unsigned.test. A 127.0.0.7', `_25._tcp.mx.unsigned.test. TLSA ${EE}`],
    },
    { name: 'expired.test', dnssec: 'expired', records: ['mx.expired.test. A 127.0.0.8'] },
  ]);
  dane = new Dane({ servers: [dns.resolver], timeoutMs: 5000, mxPort: 25 });
}, 60_000);

afterAll(async () => {
  await dns?.close();
});

describe('DANE for an MX host', () => {
  test('all validated, a usable TLSA record: TLS required, verified against the records', async () => {
    const decision = await dane.forHost('mx.signed.test', 'a.signed.test', 4);
    expect(decision).toMatchObject({
      kind: 'require',
      requirement: { level: 'dane', requireTls: true, verify: expect.any(Function), policy: { type: 'tlsa', domain: 'mx.signed.test', string: [EE] } },
    });
  });

  test('the recipient domain\'s MX is not signed: no DANE, though the host has signed TLSA records', async () => {
    expect(await dane.forHost('mx.signed.test', 'a.unsigned.test', 4)).toEqual({ kind: 'none', why: 'the MX records of a.unsigned.test are not DNSSEC-signed' });
  });

  test('the host\'s address records are not signed: no DANE', async () => {
    expect(await dane.forHost('mx.unsigned.test', 'b.signed.test', 4)).toEqual({ kind: 'none', why: 'the A records of mx.unsigned.test are not DNSSEC-signed' });
  });

  test('no TLSA records (validated denial): no DANE', async () => {
    expect(await dane.forHost('plain.signed.test', 'c.signed.test', 4)).toMatchObject({ kind: 'none', why: expect.stringContaining('has no TLSA records') });
  });

  test('only unusable records: TLS required, no verification', async () => {
    const decision = await dane.forHost('pkix.signed.test', 'd.signed.test', 4);
    expect(decision).toMatchObject({ kind: 'require', requirement: { level: 'opportunistic', requireTls: true } });
    expect(decision.kind === 'require' && decision.requirement.verify).toBeUndefined();
  });

  test('the host\'s address records fail validation (expired signatures): deferred, dnssec-invalid', async () => {
    expect(await dane.forHost('mx.expired.test', 'e.signed.test', 4)).toMatchObject({
      kind: 'defer', result: 'dnssec-invalid', reply: expect.stringMatching(/^DANE: the DNSSEC validation of the A records of mx\.expired\.test failed \(the resolver \S+ answered SERVFAIL\)/),
    });
  });

  test('a forged address record: deferred, dnssec-invalid', async () => {
    expect(await dane.forHost('forged.signed.test', 'f.signed.test', 4)).toMatchObject({ kind: 'defer', result: 'dnssec-invalid' });
  });

  test('a resolver that is not on loopback: DANE is not used, nothing is asked', async () => {
    const remote = new Dane({ servers: ['192.0.2.53'], timeoutMs: 1000, mxPort: 25 });
    expect(remote.unusable).toContain('192.0.2.53:53 is not on this machine');
    expect(await remote.forHost('mx.signed.test', 'a.signed.test', 4)).toMatchObject({ kind: 'none' });
    expect(await remote.checkResolver()).toMatchObject({ ok: false, fix: expect.stringContaining('unbound') });
  });

  test('the resolver check: the test root validates', async () => {
    expect(await dane.checkResolver()).toMatchObject({ ok: true });
  });
});
