// DANE on delivery (RFC 7672), end to end: the relay (RELAY_DANE=on) asks Debian's unbound,
// which validates a signed test root and zones served by NSD (test/helpers/dnssec-dns.ts),
// and delivers over real SMTP to sink MX hosts on loopback, one per case:
//   ee       TLSA 3 1 1 of the sink's certificate          -> delivered, tlsLevel dane, verified
//   bad      TLSA 3 1 1 of another certificate             -> deferred, nothing reaches the sink
//   ta       TLSA 2 0 1 of a test CA, sink chain leaf + CA -> delivered, tlsLevel dane
//   pkix     only PKIX-TA/PKIX-EE (0, 1) records            -> delivered over TLS, not verified
//   forged   TLSA record whose signature fails (bogus)     -> deferred: DNSSEC reason
//   unsigned TLSA that does not match, in an unsigned zone -> ignored: delivered
//   notls    TLSA 3 1 1, the sink offers no STARTTLS       -> deferred, nothing in clear
//   none     signed zone, no TLSA (validated NODATA)       -> delivered opportunistically
//   down     TLSA 3 1 1, nothing listens on the host        -> deferred as unreachable, not as TLS
// bad.dane.test and ee.dane.test publish a TLS report record (RFC 8460): their DANE outcomes
// reach the report sink (rpt) as a report with policy-type tlsa.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { runDoctor } from '../../src/doctor/run-doctor';
import { Harness, logLines, startHarness, submit, waitForLog } from '../helpers/relay-harness';
import { makeCertificate, tlsaData } from '../helpers/dane-certificates';
import { DnssecDns, startDnssecDns } from '../helpers/dnssec-dns';
import { Sink, startSink } from '../helpers/sink';

const ca = makeCertificate({ names: ['DANE Test CA'], ca: true });
const taLeaf = makeCertificate({ names: ['mx-ta.dane.test'], issuer: ca });
const eeCert = makeCertificate({ names: ['some-other-name.example'] }); // DANE-EE: the name does not matter
const stranger = makeCertificate({ names: ['mx-bad.dane.test'] });

const HOSTS = {
  ee: '127.0.0.3', bad: '127.0.0.4', ta: '127.0.0.5', pkix: '127.0.0.6', forged: '127.0.0.7', unsigned: '127.0.0.8', notls: '127.0.0.10', none: '127.0.0.11', down: '127.0.0.12', rpt: '127.0.0.13',
} as const;
type Case = keyof typeof HOSTS;

let dns: DnssecDns;
let h: Harness;
const sinks = {} as Record<Exclude<Case, 'down'>, Sink>;
const TLSRPT = '"v=TLSRPTv1; rua=mailto:tls@rpt.dane.test"';

beforeAll(async () => {
  sinks.ee = await startSink({ host: HOSTS.ee, certificate: { key: eeCert.key, cert: eeCert.chain } });
  const port = sinks.ee.port;
  sinks.bad = await startSink({ host: HOSTS.bad, port, certificate: { key: eeCert.key, cert: eeCert.chain } });
  sinks.ta = await startSink({ host: HOSTS.ta, port, certificate: { key: taLeaf.key, cert: taLeaf.chain } });
  sinks.pkix = await startSink({ host: HOSTS.pkix, port, certificate: { key: eeCert.key, cert: eeCert.chain } });
  sinks.forged = await startSink({ host: HOSTS.forged, port, certificate: { key: eeCert.key, cert: eeCert.chain } });
  sinks.unsigned = await startSink({ host: HOSTS.unsigned, port, certificate: { key: eeCert.key, cert: eeCert.chain } });
  sinks.notls = await startSink({ host: HOSTS.notls, port, tls: false });
  sinks.none = await startSink({ host: HOSTS.none, port, certificate: { key: eeCert.key, cert: eeCert.chain } });
  sinks.rpt = await startSink({ host: HOSTS.rpt, port, certificate: { key: eeCert.key, cert: eeCert.chain } });

  const tlsa = (host: string, ...records: string[]) => records.map((r) => `_${port}._tcp.${host}. TLSA ${r}`);
  const mx = (c: Case, zone = 'dane.test') => [`${c}.${zone}. MX 10 mx-${c}.${zone}.`, `mx-${c}.${zone}. A ${HOSTS[c]}`];
  dns = await startDnssecDns([
    {
      name: 'dane.test',
      dnssec: 'signed',
      records: [
        ...mx('ee'), ...tlsa('mx-ee.dane.test', `3 1 1 ${tlsaData(eeCert, 1, 1)}`),
        ...mx('bad'), ...tlsa('mx-bad.dane.test', `3 1 1 ${tlsaData(stranger, 1, 1)}`),
        ...mx('ta'), ...tlsa('mx-ta.dane.test', `2 0 1 ${tlsaData(ca, 0, 1)}`),
        ...mx('pkix'), ...tlsa('mx-pkix.dane.test', `0 0 1 ${tlsaData(ca, 0, 1)}`, `1 1 1 ${tlsaData(stranger, 1, 1)}`),
        ...mx('forged'), ...tlsa('mx-forged.dane.test', `3 1 1 ${tlsaData(eeCert, 1, 1)}`),
        ...mx('notls'), ...tlsa('mx-notls.dane.test', `3 1 1 ${tlsaData(eeCert, 1, 1)}`),
        ...mx('none'),
        ...mx('rpt'),
        `_smtp._tls.bad.dane.test. TXT ${TLSRPT}`, `_smtp._tls.ee.dane.test. TXT ${TLSRPT}`,
        ...mx('down'), ...tlsa('mx-down.dane.test', `3 1 1 ${tlsaData(eeCert, 1, 1)}`),
      ],
      forge: [`_${port}._tcp.mx-forged.dane.test`],
    },
    {
      name: 'unsigned.test',
      dnssec: 'unsigned',
      records: [...mx('unsigned', 'unsigned.test'), ...tlsa('mx-unsigned.unsigned.test', `3 1 1 ${tlsaData(stranger, 1, 1)}`)],
    },
  ]);
  h = await startHarness({ RELAY_DNS_SERVERS: dns.resolver, RELAY_DANE: 'on', RELAY_MX_PORT: String(port), RELAY_RETRY_SCHEDULE: '1h', RELAY_TLSRPT_INTERVAL: '3s' });
}, 120_000);

afterAll(async () => {
  await h?.stop();
  await dns?.close();
  await Promise.all(Object.values(sinks).map((s) => s.close()));
});

function recipientDomain(c: Case): string {
  return c === 'unsigned' ? 'unsigned.unsigned.test' : `${c}.dane.test`;
}

/** Submits one message to user@<case domain> and returns the relay's first delivery attempt line for it. */
async function attempt(c: Case): Promise<Record<string, unknown>> {
  const domain = recipientDomain(c);
  await submit(h, { to: [`user@${domain}`] });
  try {
    return await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.domain === domain, 20_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nDNS logs: ${dns.logs()}`);
  }
}

/** The recipient's last reply as the queue keeps it (a deferred message may wait on disk). */
async function queuedReply(c: Case): Promise<string | undefined> {
  const address = `user@${recipientDomain(c)}`;
  const all = (await h.relay.queue.allEnvelopes(10_000)) ?? [];
  return all.flatMap((e) => e.recipients).find((r) => r.address === address)?.lastReply;
}

describe('DANE on delivery', () => {
  test('at start the relay says its resolver validates DNSSEC', () => {
    const line = logLines(h).find((l) => typeof l.msg === 'string' && l.msg.startsWith('DANE is on'));
    expect(line).toMatchObject({ level: 30, msg: expect.stringContaining(`the DNS resolver ${dns.resolver} validates DNSSEC`) });
  });

  test('doctor reports that the resolver validates', async () => {
    const report = await runDoctor(h.config, { hostname: 'vm' });
    expect(report.checks.filter((c) => c.id === 'dane-resolver')).toEqual([
      { domain: null, id: 'dane-resolver', status: 'pass', fix: null, detail: expect.stringContaining(`the DNS resolver ${dns.resolver} validates DNSSEC`) },
    ]);
  }, 60_000);

  test('DANE-EE 3 1 1 matching the certificate: delivered over TLS, verified by DANE', async () => {
    const line = await attempt('ee');
    expect(line).toMatchObject({ outcome: 'delivered', host: 'mx-ee.dane.test', tlsLevel: 'dane', tlsVerified: true, tlsVersion: expect.stringMatching(/^TLSv1\.[23]$/) });
    const [msg] = await sinks.ee.waitForMessages(1);
    expect(msg.secure).toBe(true);
    expect(msg.rcptTo).toEqual(['user@ee.dane.test']);
  });

  test('a TLSA record that does not match: deferred, nothing reaches the sink', async () => {
    const line = await attempt('bad');
    expect(line).toMatchObject({ outcome: 'deferred', host: 'mx-bad.dane.test', tlsPolicy: 'tlsa', tlsFailure: 'tlsa-invalid', class: 'tls' });
    expect(line.reply).toMatch(/^DANE: the certificate of mx-bad\.dane\.test does not match its TLSA records/);
    expect(await queuedReply('bad')).toBe(line.reply);
    expect(sinks.bad.connections.length).toBeGreaterThan(0); // it was reached, then left
    expect(sinks.bad.messages).toHaveLength(0);
    // the next message meets the same check, not a "took no connection" (the host answered)
    await submit(h, { to: ['user@bad.dane.test'] });
    await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.domain === 'bad.dane.test' && l !== line
      && typeof l.reply === 'string' && l.reply.startsWith('DANE: the certificate of mx-bad.dane.test'), 20_000);
    expect(logLines(h).filter((l) => l.domain === 'bad.dane.test' && /took no connection/.test(String(l.reply)))).toEqual([]);
    expect(sinks.bad.messages).toHaveLength(0);
  });

  test('DANE-TA 2 0 1 of a test CA: delivered, verified by DANE', async () => {
    const line = await attempt('ta');
    expect(line).toMatchObject({ outcome: 'delivered', host: 'mx-ta.dane.test', tlsLevel: 'dane', tlsVerified: true });
    expect(await sinks.ta.waitForMessages(1)).toHaveLength(1);
  });

  test('only PKIX-TA/PKIX-EE records (unusable for SMTP): delivered over TLS without verification', async () => {
    const line = await attempt('pkix');
    expect(line).toMatchObject({ outcome: 'delivered', host: 'mx-pkix.dane.test', tls: true, tlsLevel: 'opportunistic', tlsVerified: false });
    expect(await sinks.pkix.waitForMessages(1)).toHaveLength(1);
  });

  test('a TLSA record that fails DNSSEC validation (bogus): the host is not tried, deferred with the DNSSEC reason', async () => {
    const line = await attempt('forged');
    expect(line).toMatchObject({ outcome: 'deferred', host: 'mx-forged.dane.test', class: 'tls', tlsPolicy: 'tlsa', tlsFailure: 'dnssec-invalid' });
    expect(line.reply).toMatch(/^DANE: the DNSSEC validation of the TLSA records _\d+\._tcp\.mx-forged\.dane\.test failed \(the resolver .* answered SERVFAIL\)/);
    expect(await queuedReply('forged')).toBe(line.reply);
    expect(sinks.forged.connections).toHaveLength(0);
  });

  test('TLSA records in an unsigned zone are ignored: delivered opportunistically', async () => {
    const line = await attempt('unsigned');
    expect(line).toMatchObject({ outcome: 'delivered', host: 'mx-unsigned.unsigned.test', tlsLevel: 'opportunistic', tlsVerified: false });
    expect(await sinks.unsigned.waitForMessages(1)).toHaveLength(1);
  });

  test('an MX host with TLSA records but no STARTTLS: deferred, never sent in clear', async () => {
    const line = await attempt('notls');
    expect(line).toMatchObject({ outcome: 'deferred', host: 'mx-notls.dane.test', tlsPolicy: 'tlsa', tlsFailure: 'starttls-not-supported', class: 'tls' });
    expect(line.reply).toMatch(/^DANE: mx-notls\.dane\.test \[127\.0\.0\.10\] does not offer STARTTLS/);
    expect(sinks.notls.messages).toHaveLength(0);
  });

  test('an MX host with TLSA records that takes no connection: deferred as unreachable, not as a TLS failure', async () => {
    const line = await attempt('down');
    expect(line).toMatchObject({ outcome: 'deferred', host: 'mx-down.dane.test', class: 'connect' });
    expect(line.reply).toMatch(/ECONNREFUSED/);
    expect(line.tlsFailure).toBeUndefined();
  });

  test('a signed zone without TLSA records for the host: delivered opportunistically', async () => {
    const line = await attempt('none');
    expect(line).toMatchObject({ outcome: 'delivered', host: 'mx-none.dane.test', tlsLevel: 'opportunistic', tlsVerified: false });
    expect(await sinks.none.waitForMessages(1)).toHaveLength(1);
  });
});

describe('DANE outcomes in TLS reports (RFC 8460)', () => {
  interface Policy { policy: Record<string, unknown>; summary: Record<string, number>; 'failure-details'?: Record<string, unknown>[] }
  async function reportAbout(domain: string): Promise<{ report: { policies: Policy[] }; schema_errors: string[] }> {
    const deadline = Date.now() + 40_000;
    for (;;) {
      const msg = sinks.rpt.messages.find((m) => m.data.includes(`\r\nTLS-Report-Domain: ${domain}\r\n`));
      if (msg) {
        const out = execFileSync('/usr/bin/python3', [path.join(__dirname, '..', 'helpers', 'parse_tlsrpt.py'), 'mail'], { input: Buffer.from(msg.data) });
        return JSON.parse(out.toString()) as { report: { policies: Policy[] }; schema_errors: string[] };
      }
      if (Date.now() > deadline) throw new Error(`no TLS report about ${domain} within 40 s; log: ${h.logFile}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  test('a TLSA mismatch is reported as a tlsa policy failure with result tlsa-invalid; a DANE success as a tlsa success', async () => {
    const bad = await reportAbout('bad.dane.test');
    expect(bad.schema_errors).toEqual([]);
    const badTlsa = bad.report.policies.find((p) => p.policy['policy-type'] === 'tlsa');
    expect(badTlsa).toBeDefined();
    expect(badTlsa!.summary['total-failure-session-count']).toBeGreaterThanOrEqual(1);
    expect(badTlsa!['failure-details']).toEqual(expect.arrayContaining([
      expect.objectContaining({ 'result-type': 'tlsa-invalid', 'receiving-mx-hostname': 'mx-bad.dane.test', 'receiving-ip': HOSTS.bad }),
    ]));
    expect(JSON.stringify(badTlsa!.policy['policy-string'])).toContain('3 1 1');

    const ee = await reportAbout('ee.dane.test');
    expect(ee.schema_errors).toEqual([]);
    const eeTlsa = ee.report.policies.find((p) => p.policy['policy-type'] === 'tlsa');
    expect(eeTlsa!.summary).toMatchObject({ 'total-successful-session-count': 1, 'total-failure-session-count': 0 });
  }, 60_000);
});

describe('DANE with a resolver that does not validate', () => {
  test('the relay warns at start and says what to fix; doctor fails the check', async () => {
    const plain = await startHarness({ RELAY_DANE: 'on' }); // the harness's own DNS server: no DNSSEC
    try {
      const line = logLines(plain).find((l) => typeof l.msg === 'string' && l.msg.startsWith('DANE is on'));
      expect(line).toMatchObject({ level: 40, msg: expect.stringContaining('does not validate DNSSEC') });
      expect(line!.msg).toContain('run a validating resolver on this machine, such as unbound listening on 127.0.0.1');
      const report = await runDoctor(plain.config, { hostname: 'vm' });
      expect(report.checks.filter((c) => c.id === 'dane-resolver')).toEqual([{
        domain: null, id: 'dane-resolver', status: 'fail',
        detail: expect.stringContaining('does not validate DNSSEC'),
        fix: expect.stringContaining('such as unbound listening on 127.0.0.1'),
      }]);
    } finally {
      await plain.stop();
    }
  });
});
