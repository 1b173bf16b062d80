// `dkim-relay doctor` against a real DNS server on loopback. One zone where every check
// passes, and variants that each break one thing: each must give exactly the expected
// verdict and fix, and nothing else may fail or warn. Then the command itself through
// main() from src/cli.ts: exit codes, --json shape, the text report, usage errors.
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { main } from '../../src/cli';
import { loadConfig } from '../../src/config/load';
import { dkimRecordValue, zoneFileRecord } from '../../src/dkim/dns-record';
import { activateKey } from '../../src/dkim/key-lifecycle';
import { generateKey } from '../../src/dkim/keygen';
import { createResolver } from '../../src/dns/resolver';
import { DoctorCheck } from '../../src/doctor/check';
import { runDoctor } from '../../src/doctor/run-doctor';
import { reverseName, startDnsServer, TestDnsServer } from '../helpers/dns-server';

const IP = '127.0.0.2';
const HELO = 'relay.example.net';
const DOMAIN = 'example.org';
const SPAMHAUS = 'zen.dnsbl.test';
const OTHER_BL = 'bl.dnsbl.test';

let dns: TestDnsServer;
/** A UDP port on loopback that receives DNS queries and never answers. */
let silent: dgram.Socket;
let silentAddress: string;
let dir: string;
let env: Record<string, string>;
let dkimValue: string;
let dkimLine: string;

function publishPassingZone(): void {
  dns.clear();
  dns.set(reverseName(IP), 'PTR', [HELO]);
  dns.set(HELO, 'A', [IP]);
  dns.set(HELO, 'TXT', [`v=spf1 ip4:${IP} -all`]);
  dns.set(DOMAIN, 'MX', [{ exchange: `mx.${DOMAIN}`, priority: 10 }]);
  dns.set(`mx.${DOMAIN}`, 'A', ['127.0.0.3']);
  dns.set(DOMAIN, 'TXT', [`v=spf1 ip4:${IP} mx ~all`, 'google-site-verification=abc']);
  dns.set(`s1._domainkey.${DOMAIN}`, 'TXT', [dkimValue]);
  dns.set(`_dmarc.${DOMAIN}`, 'TXT', [`v=DMARC1; p=none; rua=mailto:dmarc@${DOMAIN}`]);
}

function config(extra: Record<string, string> = {}) {
  return loadConfig({ env: { ...env, ...extra } });
}

/** Every check that is not a pass or a note: what a variant must change, and nothing more. */
function problems(checks: DoctorCheck[]): Pick<DoctorCheck, 'domain' | 'id' | 'status' | 'fix'>[] {
  return checks.filter((c) => c.status !== 'pass' && c.status !== 'info').map(({ domain, id, status, fix }) => ({ domain, id, status, fix }));
}

async function doctor(extra: Record<string, string> = {}) {
  return runDoctor(config(extra), { hostname: 'vm' });
}

beforeAll(async () => {
  dns = await startDnsServer({ host: '127.0.0.1' });
  silent = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  silentAddress = `127.0.0.1:${silent.address().port}`;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-doctor-'));
  env = {
    RELAY_KEYS_DIR: path.join(dir, 'keys'),
    RELAY_DATA_DIR: path.join(dir, 'data'),
    RELAY_USERS_FILE: path.join(dir, 'users.json'),
    RELAY_LOCAL_ADDRESS: IP,
    RELAY_HELO_NAME: HELO,
    RELAY_DNS_SERVERS: dns.address,
    RELAY_DNS_TIMEOUT: '2',
    RELAY_DOCTOR_SPAMHAUS_ZONE: SPAMHAUS,
    RELAY_DOCTOR_BLOCKLISTS: OTHER_BL,
  };
  const key = await generateKey(env.RELAY_KEYS_DIR, { domain: DOMAIN, selector: 's1', algorithm: 'rsa', bits: 2048 });
  dkimValue = key.recordValue;
  dkimLine = zoneFileRecord('s1', DOMAIN, key.recordValue);
  publishPassingZone();
  await activateKey(env.RELAY_KEYS_DIR, DOMAIN, 's1', createResolver({ servers: [dns.address], timeoutSeconds: 2 }));
}, 60000);

afterAll(async () => {
  await dns?.close();
  silent?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => publishPassingZone());

describe('a zone where everything is right', () => {
  test('every check passes, with the advice DNS cannot check as info', async () => {
    const report = await doctor();
    expect(problems(report.checks)).toEqual([]);
    expect(report.summary).toMatchObject({ fail: 0, warn: 0, error: 0, ok: true });
    const ids = report.checks.map((c) => `${c.domain ?? '-'} ${c.id} ${c.status}`);
    expect(ids).toEqual(expect.arrayContaining([
      '- identity.local-address pass', '- identity.ptr pass', '- identity.fcrdns pass', '- identity.helo-ptr pass',
      '- identity.helo-resolves pass', '- identity.ptr-generic pass', '- identity.helo-spf pass',
      '- blocklist.spamhaus pass', `- blocklist.${OTHER_BL} pass`,
      '- advice.t-online-imprint info', '- advice.microsoft-snds info',
      `${DOMAIN} spf.record pass`, `${DOMAIN} spf.authorizes-relay pass`, `${DOMAIN} spf.lookup-limit pass`, `${DOMAIN} spf.void-lookups pass`,
      `${DOMAIN} spf.ptr pass`, `${DOMAIN} spf.all pass`,
      `${DOMAIN} dkim.keys pass`, `${DOMAIN} dkim.record:s1 pass`, `${DOMAIN} dkim.key-size:s1 pass`, `${DOMAIN} dkim.testing:s1 pass`,
      `${DOMAIN} dmarc.record pass`, `${DOMAIN} dmarc.policy pass`, `${DOMAIN} dmarc.rua pass`, `${DOMAIN} dmarc.removed-tags pass`, `${DOMAIN} dmarc.alignment pass`,
      `${DOMAIN} domain.exists pass`, `${DOMAIN} advice.complaint-rate info`,
    ]));
    // p=none passes, with the advice to move on
    expect(report.checks.find((c) => c.id === 'dmarc.policy')!.detail).toMatch(/p=quarantine, then p=reject/);
    // identity first, then the domain
    expect(report.checks[0].domain).toBeNull();
    expect(report.checks[report.checks.length - 1].domain).toBe(DOMAIN);
  });

  test('without a configured HELO name the PTR name is used, and passes the same', async () => {
    const report = await doctor({ RELAY_HELO_NAME: '' });
    expect(report.identity.heloName).toBe(HELO);
    expect(problems(report.checks)).toEqual([]);
  });

  test('every lookup went to the test DNS server: the blocklist zones are the configured ones', async () => {
    dns.queries.length = 0;
    await doctor();
    const names = dns.queries.map((q) => q.name);
    expect(names).toContain(`2.0.0.127.${SPAMHAUS}`);
    expect(names).toContain(`2.0.0.127.${OTHER_BL}`);
    expect(names).not.toContain('2.0.0.127.zen.spamhaus.org');
  });
});

describe('each problem alone gives exactly its verdict and fix', () => {
  const ptrLine = `2.0.0.127.in-addr.arpa. 3600 IN PTR ${HELO}.`;
  const cases: [string, () => void, Pick<DoctorCheck, 'domain' | 'id' | 'status' | 'fix'>[]][] = [
    ['PTR missing', () => dns.remove(reverseName(IP)),
      [{ domain: null, id: 'identity.ptr', status: 'fail', fix: ptrLine }]],
    ['PTR names another host', () => {
      dns.set(reverseName(IP), 'PTR', ['mail.other.test']);
      dns.set('mail.other.test', 'A', [IP]);
    }, [{ domain: null, id: 'identity.helo-ptr', status: 'fail', fix: `set delivery.heloName (env RELAY_HELO_NAME) to mail.other.test, or have the PTR changed: ${ptrLine}` }]],
    ['PTR name not resolving back to the IP', () => dns.set(HELO, 'A', ['127.0.0.9']),
      [{ domain: null, id: 'identity.fcrdns', status: 'fail', fix: `${HELO}. 3600 IN A ${IP}` }]],
    ['HELO name not resolving', () => dns.remove(HELO, 'A'),
      [{ domain: null, id: 'identity.helo-resolves', status: 'fail', fix: `${HELO}. 3600 IN A ${IP}` }]],
    ['SPF missing', () => dns.set(DOMAIN, 'TXT', ['google-site-verification=abc']),
      [{ domain: DOMAIN, id: 'spf.record', status: 'fail', fix: `${DOMAIN}. 3600 IN TXT "v=spf1 ip4:${IP} ~all"` }]],
    ['SPF without the relay IP', () => dns.set(DOMAIN, 'TXT', ['v=spf1 ip4:192.0.2.1 ~all']),
      [{ domain: DOMAIN, id: 'spf.authorizes-relay', status: 'fail', fix: `${DOMAIN}. 3600 IN TXT "v=spf1 ip4:${IP} ip4:192.0.2.1 ~all"` }]],
    ['two SPF records', () => dns.set(DOMAIN, 'TXT', [`v=spf1 ip4:${IP} ~all`, 'v=spf1 mx -all']),
      [{ domain: DOMAIN, id: 'spf.record', status: 'fail', fix: `${DOMAIN}. 3600 IN TXT "v=spf1 ip4:${IP} mx ~all"` }]],
    ['SPF with 11 lookups', () => {
      const hosts = Array.from({ length: 11 }, (_, i) => `h${i + 1}.${DOMAIN}`);
      for (const h of hosts) dns.set(h, 'A', ['192.0.2.10']);
      dns.set(DOMAIN, 'TXT', [`v=spf1 ip4:${IP} ${hosts.map((h) => `a:${h}`).join(' ')} ~all`]);
    }, [{ domain: DOMAIN, id: 'spf.lookup-limit', status: 'fail', fix: `remove terms or replace a, mx and include terms by the ip4:/ip6: networks they stand for, down to 10 lookups; keep ip4:${IP} first` }]],
    ['DKIM record missing', () => dns.remove(`s1._domainkey.${DOMAIN}`),
      [{ domain: DOMAIN, id: 'dkim.record:s1', status: 'fail', fix: '<dkim line>' }]],
    ['DKIM p= of another key', () => {
      const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
      dns.set(`s1._domainkey.${DOMAIN}`, 'TXT', [dkimRecordValue(other)]);
    }, [{ domain: DOMAIN, id: 'dkim.record:s1', status: 'fail', fix: '<dkim line>' }]],
    ['DMARC missing', () => dns.remove(`_dmarc.${DOMAIN}`),
      [{ domain: DOMAIN, id: 'dmarc.record', status: 'fail', fix: `_dmarc.${DOMAIN}. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@${DOMAIN}"` }]],
    ['IP listed in a DNSBL', () => dns.set(`2.0.0.127.${OTHER_BL}`, 'A', ['127.0.0.2']),
      [{ domain: null, id: `blocklist.${OTHER_BL}`, status: 'fail', fix: `look ${IP} up on the website of ${OTHER_BL} for the reason, fix it, and request the removal there` }]],
    ['DNSBL answering 127.255.255.254 (query refused)', () => dns.set(`2.0.0.127.${SPAMHAUS}`, 'A', ['127.255.255.254']),
      [{
        domain: null, id: 'blocklist.spamhaus', status: 'error',
        fix: 'set dns.servers (env RELAY_DNS_SERVERS) to a recursive resolver of your own (not 8.8.8.8 or 1.1.1.1), or use a free Spamhaus DQS key: doctor.spamhausZone (env RELAY_DOCTOR_SPAMHAUS_ZONE) = YOURKEY.zen.dq.spamhaus.net',
      }]],
  ];

  test.each(cases)('%s', async (_name, breakIt, expected) => {
    breakIt();
    const report = await doctor();
    expect(problems(report.checks)).toEqual(expected.map((e) => (e.fix === '<dkim line>' ? { ...e, fix: dkimLine } : e)));
  });

  test('details say what was found', async () => {
    dns.set(`2.0.0.127.${SPAMHAUS}`, 'A', ['127.255.255.254']);
    dns.set(DOMAIN, 'TXT', ['v=spf1 ip4:192.0.2.1 ~all']);
    const report = await doctor();
    const detail = (id: string) => report.checks.find((c) => c.id === id)!.detail;
    expect(detail('blocklist.spamhaus')).toMatch(/127\.255\.255\.254.*public or open resolver/);
    expect(detail('spf.authorizes-relay')).toMatch(/does not authorize the relay's IP 127\.0\.0\.2 \(result softfail\)/);
  });

  test('the Spamhaus PBL answer means a dynamic range: fail, with the smarthost as the fix', async () => {
    dns.set(`2.0.0.127.${SPAMHAUS}`, 'A', ['127.0.0.10']);
    const report = await doctor();
    const [only] = problems(report.checks);
    expect(problems(report.checks)).toHaveLength(1);
    expect(only).toMatchObject({ id: 'blocklist.spamhaus', status: 'fail' });
    expect(only.fix).toMatch(/delivery\.smarthost \(env RELAY_SMARTHOST\)/);
    expect(report.checks.find((c) => c.id === 'blocklist.spamhaus')!.detail).toMatch(/Spamhaus PBL: a dynamic or residential range/);
  });

  test('warnings: a generic PTR name, t=y, ptr in SPF, removed DMARC tags, no rua', async () => {
    dns.set(reverseName(IP), 'PTR', ['dyn-127-0-0-2.pool.isp.test', HELO]);
    dns.set('dyn-127-0-0-2.pool.isp.test', 'A', [IP]);
    dns.set(`s1._domainkey.${DOMAIN}`, 'TXT', [`${dkimValue}; t=y`]);
    dns.set(DOMAIN, 'TXT', [`v=spf1 ip4:${IP} ptr ~all`]);
    dns.set(`_dmarc.${DOMAIN}`, 'TXT', ['v=DMARC1; p=quarantine; pct=50; ri=3600']);
    const report = await doctor();
    expect(problems(report.checks).map((p) => `${p.id} ${p.status}`)).toEqual([
      'identity.ptr-generic warn', 'spf.ptr warn', 'dkim.testing:s1 warn', 'dmarc.rua warn', 'dmarc.removed-tags warn',
    ]);
    const fix = (id: string) => report.checks.find((c) => c.id === id)!.fix;
    expect(fix('dkim.testing:s1')).toBe(dkimLine);
    expect(fix('spf.ptr')).toBe(`${DOMAIN}. 3600 IN TXT "v=spf1 ip4:${IP} ~all"`);
    expect(fix('dmarc.removed-tags')).toBe(`_dmarc.${DOMAIN}. 3600 IN TXT "v=DMARC1; p=quarantine"`);
    expect(fix('dmarc.rua')).toBe(`_dmarc.${DOMAIN}. 3600 IN TXT "v=DMARC1; p=quarantine; pct=50; ri=3600; rua=mailto:dmarc-reports@${DOMAIN}"`);
  });

  test('+all fails; a domain without MX or A fails', async () => {
    dns.set(DOMAIN, 'TXT', ['v=spf1 +all']);
    dns.remove(DOMAIN, 'MX');
    const report = await doctor();
    expect(problems(report.checks)).toEqual([
      { domain: DOMAIN, id: 'spf.all', status: 'fail', fix: `${DOMAIN}. 3600 IN TXT "v=spf1 ip4:${IP} ~all"` },
      { domain: DOMAIN, id: 'domain.exists', status: 'fail', fix: `${DOMAIN}. 3600 IN MX 10 mail.${DOMAIN}.` },
    ]);
  });

  test.each([['does not answer', () => silentAddress], ['refuses', () => '127.0.0.1:9']])('a DNS server that %s gives error, never fail', async (_how, server) => {
    const report = await doctor({ RELAY_DNS_SERVERS: server(), RELAY_DNS_TIMEOUT: '1' });
    expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(report.checks.find((c) => c.id === 'identity.ptr')).toMatchObject({ status: 'error' });
    expect(report.checks.find((c) => c.id === 'spf.record')).toMatchObject({ status: 'error' });
    expect(report.summary.ok).toBe(true);
  });

  test('without a local address: a warning, and the IP checks are not run', async () => {
    const report = await doctor({ RELAY_LOCAL_ADDRESS: '' });
    expect(problems(report.checks)).toEqual([{
      domain: null, id: 'identity.local-address', status: 'warn',
      fix: 'set delivery.localAddress (env RELAY_LOCAL_ADDRESS) to the public IP this relay sends from, the one whose PTR record names the HELO name',
    }]);
    expect(report.checks.find((c) => c.id === 'spf.authorizes-relay')!.status).toBe('info');
  });
});

describe('the doctor command', () => {
  class Capture extends Writable {
    text = '';
    override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
      this.text += chunk.toString();
      done();
    }
  }
  async function cli(args: string[], extra: Record<string, string> = {}) {
    const saved = { ...process.env };
    for (const k of Object.keys(process.env)) if (k.startsWith('RELAY_')) delete process.env[k];
    Object.assign(process.env, env, extra);
    const stdout = new Capture();
    const stderr = new Capture();
    try {
      const code = await main(args, { stdout, stderr });
      return { code, stdout: stdout.text, stderr: stderr.text };
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  }

  test('--json: the checks and a summary; exit 0 when nothing fails', async () => {
    const r = await cli(['doctor', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out).sort()).toEqual(['checks', 'summary']);
    for (const c of out.checks) {
      expect(Object.keys(c).sort()).toEqual(['detail', 'domain', 'fix', 'id', 'status']);
      expect(['pass', 'warn', 'fail', 'error', 'info']).toContain(c.status);
    }
    expect(out.checks.filter((c: DoctorCheck) => c.domain === null).length).toBeGreaterThan(5);
    expect(out.checks.filter((c: DoctorCheck) => c.domain === DOMAIN).length).toBeGreaterThan(10);
    expect(out.summary).toMatchObject({ fail: 0, error: 0, warn: 0, ok: true });
    expect(out.summary.pass).toBe(out.checks.filter((c: DoctorCheck) => c.status === 'pass').length);
  });

  test('a failure: exit 1, and the text report shows the fix under it', async () => {
    dns.remove(`_dmarc.${DOMAIN}`);
    const r = await cli(['doctor', '--domain', DOMAIN]);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines).toContain(`Domain ${DOMAIN}`);
    const at = lines.findIndex((l) => /^\s+FAIL\s+dmarc\.record\s/.test(l));
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1].trim()).toBe(`fix: _dmarc.${DOMAIN}. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@${DOMAIN}"`);
    expect(lines.filter((l) => /^\s+PASS\s/.test(l)).length).toBeGreaterThan(15);
    expect(r.stdout).toMatch(/^1 failed, 0 could not be checked, 0 warnings, \d+ passed, \d+ notes\.$/m);
  });

  test('--domain checks a domain that is not in the key store', async () => {
    dns.set('other.test', 'MX', [{ exchange: 'mx.other.test', priority: 10 }]);
    const r = await cli(['doctor', '--domain', 'Other.Test', '--json']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect([...new Set(out.checks.map((c: DoctorCheck) => c.domain))]).toEqual([null, 'other.test']);
    expect(out.checks.find((c: DoctorCheck) => c.id === 'dkim.keys')).toMatchObject({ status: 'fail', fix: 'dkim-relay keygen --domain other.test' });
  });

  test('usage errors: exit 2 with the usage, no stack trace', async () => {
    for (const args of [['doctor', '--frobnicate'], ['doctor', '--domain', 'not a domain'], ['doctor', 'example.org']]) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/usage: dkim-relay doctor \[--domain DOMAIN\] \[--json\]/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
    }
  });

  test('progress goes to stderr when the run takes more than a moment', async () => {
    const r = await cli(['doctor', '--json'], { RELAY_DNS_SERVERS: silentAddress, RELAY_DNS_TIMEOUT: '1' });
    expect(r.stderr).toMatch(/^doctor: checking .*\.\.\.$/m);
    expect(r.stderr).toMatch(/^doctor: done in \d+\.\d s$/m);
    expect(() => JSON.parse(r.stdout)).not.toThrow();
  });
});

describe('both address families (delivery.localAddress with an IPv4 and an IPv6 address)', () => {
  const IP6 = '::1';
  const NIBBLES = `1.${'0.'.repeat(31)}`;
  beforeEach(() => {
    publishPassingZone();
    dns.set(reverseName(IP6), 'PTR', [HELO]);
    dns.set(HELO, 'AAAA', [IP6]);
    dns.set(HELO, 'TXT', [`v=spf1 ip4:${IP} ip6:${IP6} -all`]);
  });

  test('each family is checked; SPF names the IPv6 address it lacks and the fix adds ip6:; blocklists asked in nibble form', async () => {
    dns.queries.length = 0;
    const report = await doctor({ RELAY_LOCAL_ADDRESS: `${IP},${IP6}` });
    expect(report.identity.sources).toEqual([{ localAddress: IP, heloName: HELO }, { localAddress: IP6, heloName: HELO }]);
    expect(problems(report.checks)).toEqual([{
      domain: DOMAIN, id: 'spf.authorizes-relay', status: 'fail',
      fix: `${DOMAIN}. 3600 IN TXT "v=spf1 ip6:${IP6} ip4:${IP} mx ~all"`,
    }]);
    const spf = report.checks.find((c) => c.id === 'spf.authorizes-relay')!;
    expect(spf.detail).toContain(`does not authorize the relay's IP ${IP6}`);
    expect(spf.detail).not.toContain(`${IP} (`);
    const ptrChecks = report.checks.filter((c) => c.id === 'identity.helo-ptr');
    expect(ptrChecks.map((c) => c.detail)).toEqual([
      expect.stringContaining(`IPv4 ${IP}: the HELO name ${HELO} is the PTR name of ${IP}`),
      expect.stringContaining(`IPv6 ${IP6}: the HELO name ${HELO} is the PTR name of ${IP6}`),
    ]);
    const names = dns.queries.map((q) => q.name);
    expect(names).toContain(`${NIBBLES}${SPAMHAUS}`);
  });

  test('an IPv6 address without PTR: identity.ptr fails for that address only', async () => {
    dns.set(DOMAIN, 'TXT', [`v=spf1 ip4:${IP} ip6:${IP6} mx ~all`]);
    dns.remove(reverseName(IP6));
    const report = await doctor({ RELAY_LOCAL_ADDRESS: `${IP},${IP6}` });
    const failing = report.checks.filter((c) => c.status === 'fail' || c.status === 'warn');
    expect(failing.length).toBeGreaterThan(0);
    expect(failing.every((c) => c.detail.startsWith(`IPv6 ${IP6}: `))).toBe(true);
    expect(failing.map((c) => c.id)).toContain('identity.ptr');
  });
});
