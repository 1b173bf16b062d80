// Both address families, over real SMTP and DNS on loopback: the relay has an IPv4 source
// (127.0.0.2) and an IPv6 source (::1), each with its own PTR name in the test zone and no
// configured HELO name. An MX with only AAAA is reached from ::1 with the IPv6 PTR name as
// HELO, one with only A from 127.0.0.2 with the IPv4 one; a host with both is reached per
// delivery.addressPreference, and when the preferred family refuses the other is tried.
// Also: the config errors for two addresses of one family or a non-IP, and the warning (or,
// strict, the refusal) when delivery.heloName is not the PTR name of every address.
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../../src/config/load';
import { createResolver } from '../../src/dns/resolver';
import { establishIdentity } from '../../src/identity/check-at-start';
import { reverseName } from '../helpers/dns-server';
import { Harness, rawMessage, startHarness, submit } from '../helpers/relay-harness';
import { Sink, SinkMessage, startSink } from '../helpers/sink';

// Loopback by default; dual-stack-namespace.test.ts runs this file again inside a private
// network namespace with documentation addresses (192.0.2.0/24, 2001:db8::/32) on its lo.
const V4 = process.env.DUALSTACK_V4 ?? '127.0.0.2';
const V6 = process.env.DUALSTACK_V6 ?? '::1';
const SINK4 = process.env.DUALSTACK_SINK4 ?? '127.0.0.3';
const SINK6 = process.env.DUALSTACK_SINK6 ?? '::1';
/** Nothing listens there: an IPv4 MX address that refuses. */
const DOWN4 = process.env.DUALSTACK_DOWN4 ?? '127.0.0.4';
const HELO4 = 'relay4.example.net';
const HELO6 = 'relay6.example.net';

let h: Harness;
let sink4: Sink;
let sink6: Sink;

function setIdentityRecords(): void {
  h.dns.set(reverseName(V4), 'PTR', [HELO4]);
  h.dns.set(HELO4, 'A', [V4]);
  h.dns.set(reverseName(V6), 'PTR', [HELO6]);
  h.dns.set(HELO6, 'AAAA', [V6]);
}

beforeAll(async () => {
  sink4 = await startSink({ host: SINK4 });
  // the same port on ::1, as the relay uses one MX port for every host
  sink6 = await startSink({ host: SINK6, port: sink4.port });
  h = await startHarness({ RELAY_MX_PORT: String(sink4.port), RELAY_LOCAL_ADDRESS: `${V4},${V6}`, RELAY_HELO_NAME: '' });
  setIdentityRecords();
  h.dns.set('v6only.test', 'MX', [{ exchange: 'mx6.v6only.test', priority: 10 }]);
  h.dns.set('mx6.v6only.test', 'AAAA', [SINK6]);
  h.dns.set('v4only.test', 'MX', [{ exchange: 'mx4.v4only.test', priority: 10 }]);
  h.dns.set('mx4.v4only.test', 'A', [SINK4]);
  h.dns.set('both.test', 'MX', [{ exchange: 'mx.both.test', priority: 10 }]);
  h.dns.set('mx.both.test', 'A', [SINK4]);
  h.dns.set('mx.both.test', 'AAAA', [SINK6]);
  // IPv4 refuses (nothing listens on DOWN4), IPv6 takes it
  h.dns.set('v4down.test', 'MX', [{ exchange: 'mx.v4down.test', priority: 10 }]);
  h.dns.set('mx.v4down.test', 'A', [DOWN4]);
  h.dns.set('mx.v4down.test', 'AAAA', [SINK6]);
  // the identity is settled at start: start again now that the PTR records are there
  await h.restart();
});

afterAll(async () => {
  await h?.stop();
  await sink4?.close();
  await sink6?.close();
});

async function arrived(s: Sink, subject: string, timeoutMs = 15000): Promise<SinkMessage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msg = s.messages.find((m) => m.data.includes(`\r\nSubject: ${subject}\r\n`));
    if (msg) return msg;
    if (Date.now() > deadline) throw new Error(`no message with subject "${subject}" arrived at ${s.host} within ${timeoutMs} ms; log: ${h.logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function send(to: string, subject: string): Promise<void> {
  await submit(h, { to: [to], raw: rawMessage('app@example.org', to, { subject }) });
}

test('an AAAA-only MX is reached from the IPv6 source, HELO its PTR name', async () => {
  await send('user@v6only.test', 'to-v6only');
  const msg = await arrived(sink6, 'to-v6only');
  expect(msg.remoteAddress).toBe(V6);
  expect(msg.helo).toBe(HELO6);
});

test('an A-only MX is reached from the IPv4 source, HELO its PTR name', async () => {
  await send('user@v4only.test', 'to-v4only');
  const msg = await arrived(sink4, 'to-v4only');
  expect(msg.remoteAddress).toBe(V4);
  expect(msg.helo).toBe(HELO4);
});

test('a host with both families: IPv4 by default; when IPv4 refuses, IPv6 before giving up', async () => {
  await send('user@both.test', 'to-both-default');
  expect((await arrived(sink4, 'to-both-default')).remoteAddress).toBe(V4);
  expect(sink6.messages.some((m) => m.data.includes('Subject: to-both-default'))).toBe(false);

  await send('user@v4down.test', 'to-v4down');
  const msg = await arrived(sink6, 'to-v4down');
  expect(msg.remoteAddress).toBe(V6);
  expect(msg.helo).toBe(HELO6);
});

test('addressPreference ipv6: a host with both families is reached over IPv6', async () => {
  await h.restart({ RELAY_ADDRESS_PREFERENCE: 'ipv6' });
  await send('user@both.test', 'to-both-ipv6');
  const msg = await arrived(sink6, 'to-both-ipv6');
  expect(msg.remoteAddress).toBe(V6);
  expect(msg.helo).toBe(HELO6);
});

test('a config error names the setting for two addresses of one family, or one that is no IP', () => {
  expect(() => loadConfig({ env: { RELAY_LOCAL_ADDRESS: '127.0.0.2,127.0.0.5' } })).toThrow(/delivery\.localAddress[\s\S]*both IPv4 addresses/);
  expect(() => loadConfig({ env: { RELAY_LOCAL_ADDRESS: '127.0.0.2,relay.example.net' } })).toThrow(/delivery\.localAddress[\s\S]*"relay\.example\.net" is not an IP address/);
  expect(() => loadConfig({ env: { RELAY_ADDRESS_PREFERENCE: 'ipv5' } })).toThrow(/addressPreference/);
  expect(loadConfig({ env: { RELAY_LOCAL_ADDRESS: '127.0.0.2, ::1' } }).delivery.localAddress).toBe('127.0.0.2, ::1');
});

test('delivery.heloName that is not the PTR name of the IPv6 address: a warning naming it; strict refuses', async () => {
  const run = async (strict: boolean) => {
    const warnings: string[] = [];
    const log = pino({ level: 'info' }, new Writable({
      write(chunk, _enc, done) {
        const line = JSON.parse(chunk.toString());
        if (line.level === 40) warnings.push(line.msg);
        done();
      },
    }));
    const config = loadConfig({ env: {
      RELAY_DNS_SERVERS: h.dns.address, RELAY_DNS_TIMEOUT: '1', RELAY_LOCAL_ADDRESS: `${V4},${V6}`, RELAY_HELO_NAME: HELO4,
      RELAY_IDENTITY_STRICT: String(strict),
    } });
    const resolver = createResolver({ servers: config.dns.servers, timeoutSeconds: config.dns.timeout });
    return establishIdentity(config, resolver, log, { hostname: 'vm' }).then((identity) => ({ identity, warnings, error: null }),
      (error: Error) => ({ identity: null, warnings, error }));
  };
  const lenient = await run(false);
  expect(lenient.error).toBeNull();
  expect(lenient.identity!.sources).toEqual([
    { family: 4, localAddress: V4, heloName: HELO4 },
    { family: 6, localAddress: V6, heloName: HELO4 },
  ]);
  expect(lenient.warnings.some((w) => w.includes(`IPv6 ${V6}`) && w.includes(`is not the PTR name of ${V6}`))).toBe(true);
  expect(lenient.warnings.some((w) => w.includes(`IPv4 ${V4}`))).toBe(false);

  const strict = await run(true);
  expect(strict.error?.message).toMatch(/identity\.strict/);
  expect(strict.error?.message).toContain(`IPv6 ${V6}: the HELO name ${HELO4}`);
});

test('a host with a global IPv6 address and no IPv6 source configured: a warning that says what to set', async () => {
  const warnings: { msg: string; fix?: string }[] = [];
  const log = pino({ level: 'info' }, new Writable({
    write(chunk, _enc, done) {
      const line = JSON.parse(chunk.toString());
      if (line.level === 40) warnings.push(line);
      done();
    },
  }));
  const config = loadConfig({ env: { RELAY_DNS_SERVERS: h.dns.address, RELAY_DNS_TIMEOUT: '1', RELAY_LOCAL_ADDRESS: V4, RELAY_HELO_NAME: '' } });
  const resolver = createResolver({ servers: config.dns.servers, timeoutSeconds: config.dns.timeout });
  const ipv6 = { address: '2001:db8::99', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '02:00:00:00:00:01', internal: false, cidr: '2001:db8::99/64', scopeid: 0 };
  const ula = { ...ipv6, address: 'fd00::2', cidr: 'fd00::2/64' };
  await establishIdentity(config, resolver, log, { hostname: 'vm', interfaces: { eth0: [ula] } });
  expect(warnings).toEqual([]);
  await establishIdentity(config, resolver, log, { hostname: 'vm', interfaces: { eth0: [ula, ipv6] } });
  expect(warnings).toHaveLength(1);
  expect(warnings[0].msg).toContain('this host has the IPv6 address 2001:db8::99, but delivery.localAddress has no IPv6 address');
  expect(warnings[0].fix).toContain(`RELAY_LOCAL_ADDRESS) = ${V4},2001:db8::99`);
});
