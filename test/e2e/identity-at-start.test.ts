// The sending identity at `serve` start, over a real DNS server on loopback: the HELO name
// chosen (configured, else the PTR name), one warning per problem with its fix, and a refused
// start only for an explicitly wrong HELO name or in strict mode. Also through `main(['serve'])`
// for the message a user sees.
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { main } from '../../src/cli';
import { loadConfig } from '../../src/config/load';
import { createResolver } from '../../src/dns/resolver';
import { establishIdentity, IdentityError } from '../../src/identity/check-at-start';
import { reverseName, startDnsServer, TestDnsServer } from '../helpers/dns-server';

const IP = '127.0.0.2';
const HELO = 'relay.example.net';

let dns: TestDnsServer;
let dir: string;

beforeAll(async () => {
  dns = await startDnsServer({ host: '127.0.0.1' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-identity-'));
});

afterAll(async () => {
  await dns?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  dns.clear();
  dns.set(reverseName(IP), 'PTR', [HELO]);
  dns.set(HELO, 'A', [IP]);
});

interface LogLine { level: number; msg: string; check?: string; fix?: string }

async function start(env: Record<string, string>, hostname = 'vm') {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  }));
  const config = loadConfig({ env: { RELAY_DNS_SERVERS: dns.address, RELAY_DNS_TIMEOUT: '1', RELAY_LOCAL_ADDRESS: IP, RELAY_HELO_NAME: HELO, ...env } });
  const resolver = createResolver({ servers: config.dns.servers, timeoutSeconds: config.dns.timeout });
  try {
    const identity = await establishIdentity(config, resolver, log, { hostname, interfaces: {} });
    return { identity, warnings: lines.filter((l) => l.level === 40), error: null };
  } catch (err) {
    return { identity: null, warnings: lines.filter((l) => l.level === 40), error: err as Error };
  }
}

test('everything right: no warning, the configured HELO name', async () => {
  const r = await start({});
  expect(r.error).toBeNull();
  expect(r.warnings).toEqual([]);
  expect(r.identity).toMatchObject({ heloName: HELO, localAddress: IP });
});

test('no HELO name configured: the PTR name of the local address is the HELO name', async () => {
  const r = await start({ RELAY_HELO_NAME: '' });
  expect(r.identity).toMatchObject({ heloName: HELO, localAddress: IP });
  expect(r.warnings).toEqual([]);
});

test('a PTR that names another host: one warning with the fix, and the relay starts', async () => {
  dns.set(reverseName(IP), 'PTR', ['mail.other.test']);
  dns.set('mail.other.test', 'A', [IP]);
  const r = await start({});
  expect(r.error).toBeNull();
  expect(r.warnings.map((w) => w.check)).toEqual(['identity.helo-ptr']);
  expect(r.warnings[0].msg).toMatch(/the HELO name relay\.example\.net .* is not the PTR name of 127\.0\.0\.2 \(mail\.other\.test\)/);
  expect(r.warnings[0].fix).toBe(`set delivery.heloName (env RELAY_HELO_NAME) to mail.other.test, or have the PTR changed: 2.0.0.127.in-addr.arpa. 3600 IN PTR ${HELO}.`);
});

test('the HELO name resolving elsewhere fails forward confirmation: a warning naming the A record to publish', async () => {
  dns.set(HELO, 'A', ['127.0.0.9']);
  const r = await start({});
  expect(r.warnings.map((w) => [w.check, w.fix])).toEqual([['identity.fcrdns', `${HELO}. 3600 IN A ${IP}`]]);
});

test('strict mode: the same mismatch refuses the start, with every fix', async () => {
  dns.set(reverseName(IP), 'PTR', ['mail.other.test']);
  dns.set('mail.other.test', 'A', [IP]);
  const r = await start({ RELAY_IDENTITY_STRICT: 'true' });
  expect(r.error).toBeInstanceOf(IdentityError);
  expect(r.error!.message).toMatch(/identity\.strict \(env RELAY_IDENTITY_STRICT\)/);
  expect(r.error!.message).toMatch(/fix: set delivery\.heloName \(env RELAY_HELO_NAME\) to mail\.other\.test/);
  // once the PTR names the HELO name, strict mode starts
  dns.set(reverseName(IP), 'PTR', [HELO]);
  expect((await start({ RELAY_IDENTITY_STRICT: 'true' })).error).toBeNull();
});

test.each([
  ['localhost', /it is localhost/],
  ['relay', /bare host name without a domain/],
  ['192.0.2.1', /it is an IP address/],
  ['relay..example.net', /empty label/],
])('an explicitly configured HELO name %s refuses the start, with the reason', async (name, reason) => {
  const r = await start({ RELAY_HELO_NAME: name });
  expect(r.error).toBeInstanceOf(IdentityError);
  expect(r.error!.message).toMatch(reason);
  expect(r.error!.message).toMatch(/delivery\.heloName \(env RELAY_HELO_NAME\)/);
});

test('the embedded defaults on a machine without network start with warnings: no local address, a bare host name', async () => {
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  try {
    const began = Date.now();
    const r = await start({ RELAY_LOCAL_ADDRESS: '', RELAY_HELO_NAME: '', RELAY_DNS_SERVERS: `127.0.0.1:${silent.address().port}` }, 'vm');
    expect(r.error).toBeNull();
    expect(r.identity).toMatchObject({ heloName: 'vm', localAddress: null, sources: [] });
    // the findings are kept for the status page and metrics
    expect(r.identity!.findings.map((f) => [f.id, f.status])).toEqual([['identity.local-address', 'warn'], ['identity.helo-resolves', 'fail']]);
    expect(r.warnings.map((w) => w.check)).toEqual(['identity.local-address', 'identity.helo-resolves']);
    expect(r.warnings[0].msg).toMatch(/the OS chooses the source IP/);
    expect(r.warnings[1].msg).toMatch(/"vm" .* is not a fully qualified domain name/);
    // an FQDN host name is looked up; DNS that never answers is a warning after dns.timeout
    const fqdn = await start({ RELAY_LOCAL_ADDRESS: '', RELAY_HELO_NAME: '', RELAY_DNS_SERVERS: `127.0.0.1:${silent.address().port}` }, 'host.example.net');
    expect(fqdn.error).toBeNull();
    expect(fqdn.warnings.map((w) => w.check)).toEqual(['identity.local-address', 'identity.helo-resolves']);
    expect(fqdn.warnings[1].msg).toMatch(/could not look up the HELO name host\.example\.net/);
    expect(Date.now() - began).toBeLessThan(5000);
  } finally {
    silent.close();
  }
});

test('strict mode without a local address refuses the start', async () => {
  const r = await start({ RELAY_LOCAL_ADDRESS: '', RELAY_IDENTITY_STRICT: 'true' });
  expect(r.error).toBeInstanceOf(IdentityError);
  expect(r.error!.message).toMatch(/set delivery\.localAddress \(env RELAY_LOCAL_ADDRESS\)/);
});

test('with a smarthost nothing is looked up or warned: receivers see the smarthost', async () => {
  dns.queries.length = 0;
  const r = await start({ RELAY_SMARTHOST: '127.0.0.3:2525', RELAY_IDENTITY_STRICT: 'true' });
  expect(r.error).toBeNull();
  expect(r.warnings).toEqual([]);
  expect(dns.queries).toEqual([]);
});

test('serve with RELAY_HELO_NAME=localhost: exit 1, the reason and the fix, no stack trace', async () => {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('RELAY_')) delete process.env[k];
  Object.assign(process.env, {
    RELAY_HELO_NAME: 'localhost', RELAY_LOCAL_ADDRESS: IP, RELAY_DNS_SERVERS: dns.address, RELAY_SUBMISSION_PORT: '0',
    RELAY_DATA_DIR: path.join(dir, 'data'), RELAY_KEYS_DIR: path.join(dir, 'keys'), RELAY_USERS_FILE: path.join(dir, 'users.json'),
  });
  let err = '';
  const stderr = new Writable({ write(c, _e, done) { err += c.toString(); done(); } });
  const stdout = new Writable({ write(_c, _e, done) { done(); } });
  try {
    const code = await main(['serve'], { stdout, stderr });
    expect(code).toBe(1);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  expect(err).toMatch(/^dkim-relay: delivery\.heloName \(env RELAY_HELO_NAME\) is "localhost", which cannot be the HELO name: it is localhost/);
  expect(err).toMatch(/leave it empty to use that PTR name/);
  expect(err).not.toMatch(/\n\s+at /);
  expect(fs.existsSync(path.join(dir, 'data'))).toBe(false); // refused before anything was opened
});
