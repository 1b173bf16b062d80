// The MTA-STS policy source (src/delivery/mta-sts.ts) over real DNS and HTTPS on loopback:
// what counts as a policy (certificate, redirect, size, media type), when it is fetched again
// (a new id; not for the same id), and that a failed fetch keeps the cached policy in force.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createResolver } from '../../src/dns/resolver';
import { MtaStsPolicies } from '../../src/delivery/mta-sts';
import { createTrustStore } from '../../src/delivery/trust-store';
import { startDnsServer, TestDnsServer } from '../helpers/dns-server';
import { PolicyAnswer, PolicyServer, policyText, startPolicyServer } from '../helpers/mta-sts-server';
import { createTestCa, KeyAndCert, TestCa } from '../helpers/test-ca';

jest.setTimeout(30_000);

const POLICY_IP = '127.0.0.11';
let ca: TestCa;
let dns: TestDnsServer;
let server: PolicyServer;
let dir: string;
const log = pino({ level: 'silent' });

beforeAll(async () => {
  ca = await createTestCa();
  dns = await startDnsServer({ host: '127.0.0.1' });
  server = await startPolicyServer(POLICY_IP, await ca.issue(['mta-sts.default.test']));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-sts-'));
});

afterAll(async () => {
  await server?.close();
  await dns?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function policies(options: { dataDir?: string; port?: number; now?: () => number } = {}): MtaStsPolicies {
  return new MtaStsPolicies({
    resolver: createResolver({ servers: [dns.address], timeoutSeconds: 2 }),
    trust: createTrustStore(ca.file),
    dataDir: options.dataDir ?? dir,
    log,
    port: options.port ?? server.port,
    recheckMs: 0, // every lookup asks DNS again
    timeoutMs: 5000,
    now: options.now,
  });
}

const certificates = new Map<string, KeyAndCert>();
async function certFor(domain: string): Promise<KeyAndCert> {
  let c = certificates.get(domain);
  if (!c) certificates.set(domain, (c = await ca.issue([`mta-sts.${domain}`])));
  return c;
}

async function publish(domain: string, id: string, answer: PolicyAnswer): Promise<void> {
  dns.set(`_mta-sts.${domain}`, 'TXT', [`v=STSv1; id=${id}`]);
  dns.set(`mta-sts.${domain}`, 'A', [POLICY_IP]);
  server.set(domain, { certificate: await certFor(domain), mx: [`mx.${domain}`], ...answer });
}

const requestsFor = (domain: string) => server.requests.filter((r) => r === `mta-sts.${domain}`).length;

test('a valid policy is fetched once per id; a new id fetches it again', async () => {
  const p = policies();
  await publish('fetch.test', 'one', { mode: 'testing' });
  expect((await p.lookup('fetch.test')).policy).toMatchObject({ id: 'one', mode: 'testing', mx: ['mx.fetch.test'], maxAge: 86400 });
  expect((await p.lookup('fetch.test')).policy).toMatchObject({ id: 'one' });
  expect(requestsFor('fetch.test')).toBe(1);
  await publish('fetch.test', 'two', { mode: 'enforce', mx: ['*.mail.fetch.test'] });
  expect((await p.lookup('fetch.test')).policy).toMatchObject({ id: 'two', mode: 'enforce', mx: ['*.mail.fetch.test'] });
  expect(requestsFor('fetch.test')).toBe(2);
});

test('a certificate from an unknown CA, or naming another host: no policy, sts-webpki-invalid', async () => {
  const other = await createTestCa('not trusted');
  await publish('badcert.test', 'a1', { mode: 'enforce', certificate: await other.issue(['mta-sts.badcert.test']) });
  const untrusted = await policies().lookup('badcert.test');
  expect(untrusted.policy).toBeUndefined();
  expect(untrusted.error).toMatchObject({ result: 'sts-webpki-invalid' });
  await publish('wrongname.test', 'a1', { mode: 'enforce', certificate: await ca.issue(['mta-sts.elsewhere.test']) });
  const wrongName = await policies().lookup('wrongname.test');
  expect(wrongName.policy).toBeUndefined();
  expect(wrongName.error).toMatchObject({ result: 'sts-webpki-invalid' });
  expect(wrongName.error!.reason).toMatch(/does not name mta-sts\.wrongname\.test/);
});

test('a redirect is not followed', async () => {
  await publish('redirect.test', 'r1', { status: 302, headers: { location: 'https://mta-sts.fetch.test/.well-known/mta-sts.txt' }, body: '' });
  const state = await policies().lookup('redirect.test');
  expect(state.policy).toBeUndefined();
  expect(state.error).toMatchObject({ result: 'sts-policy-fetch-error' });
  expect(state.error!.reason).toMatch(/HTTP 302 redirecting to https:\/\/mta-sts\.fetch\.test\/.*forbids following/);
  expect(requestsFor('fetch.test')).toBe(2); // as the test above left it
});

test('a policy over 64 KB is refused, announced or not by Content-Length', async () => {
  const big = policyText({ mode: 'enforce', mx: ['mx.big.test'] }) + `# ${'x'.repeat(70 * 1024)}\r\n`;
  await publish('big.test', 'b1', { body: big });
  const state = await policies().lookup('big.test');
  expect(state.policy).toBeUndefined();
  expect(state.error!.reason).toMatch(/is \d+ bytes, more than 65536/); // by Content-Length
  await publish('big-chunked.test', 'b1', { body: big, chunked: true });
  const chunked = await policies().lookup('big-chunked.test');
  expect(chunked.policy).toBeUndefined();
  expect(chunked.error).toMatchObject({ result: 'sts-policy-fetch-error' });
  expect(chunked.error!.reason).toMatch(/is more than 65536 bytes/); // counted while reading
});

test('a policy that is not text/plain, or not valid, is refused: sts-policy-invalid', async () => {
  await publish('html.test', 'h1', { mode: 'enforce', headers: { 'content-type': 'text/html' } });
  expect((await policies().lookup('html.test')).error).toMatchObject({ result: 'sts-policy-invalid' });
  await publish('invalid.test', 'i1', { body: 'version: STSv1\r\nmode: enforce\r\nmax_age: 600\r\n' });
  const invalid = await policies().lookup('invalid.test');
  expect(invalid.error).toMatchObject({ result: 'sts-policy-invalid' });
  expect(invalid.error!.reason).toMatch(/needs at least one mx/);
});

test('a failed refresh keeps the cached policy; so does a TXT record that disappears', async () => {
  const p = policies();
  await publish('keep.test', 'k1', { mode: 'enforce' });
  expect((await p.lookup('keep.test')).policy).toMatchObject({ id: 'k1', mode: 'enforce' });
  // new id, but the policy host now answers 404
  dns.set('_mta-sts.keep.test', 'TXT', ['v=STSv1; id=k2']);
  server.set('keep.test', { certificate: await certFor('keep.test'), status: 404, body: 'gone\n' });
  const after = await p.lookup('keep.test');
  expect(after.policy).toMatchObject({ id: 'k1', mode: 'enforce' });
  expect(after.error).toMatchObject({ result: 'sts-policy-fetch-error' });
  expect(after.error!.reason).toMatch(/HTTP 404/);
  dns.remove('_mta-sts.keep.test');
  expect((await p.lookup('keep.test')).policy).toMatchObject({ id: 'k1', mode: 'enforce' });
});

test('the cache on disk is used by a new instance (a restart) while the policy host is down', async () => {
  const dataDir = fs.mkdtempSync(path.join(dir, 'restart-'));
  await publish('disk.test', 'd1', { mode: 'enforce' });
  expect((await policies({ dataDir }).lookup('disk.test')).policy).toMatchObject({ id: 'd1' });
  server.set('disk.test', undefined);
  const fresh = await policies({ dataDir, port: 1 }).lookup('disk.test'); // port 1: nothing listens
  expect(fresh.policy).toMatchObject({ id: 'd1', mode: 'enforce', mx: ['mx.disk.test'] });
  expect(fresh.error).toBeUndefined(); // same id: nothing to fetch
  expect(fs.statSync(path.join(dataDir, 'mta-sts', 'disk.test.json')).mode & 0o777).toBe(0o600);
});

test('a policy past half its max_age is fetched again in the background; a failed refresh keeps it until it expires', async () => {
  let now = Date.now();
  const p = policies({ now: () => now });
  await publish('refresh.test', 'f1', { mode: 'enforce', maxAge: 100 });
  const first = (await p.lookup('refresh.test')).policy!;
  expect(first.expiresAt).toBe(now + 100_000);
  now += 40_000; // before half its life: no fetch
  await p.lookup('refresh.test');
  await p.idle(5000);
  expect(requestsFor('refresh.test')).toBe(1);
  now += 20_000; // 60 s: past half
  expect((await p.lookup('refresh.test')).policy).toMatchObject({ id: 'f1', fetchedAt: first.fetchedAt }); // answered from the cache
  await p.idle(5000);
  expect(requestsFor('refresh.test')).toBe(2);
  const refreshed = (await p.lookup('refresh.test')).policy!;
  expect(refreshed.expiresAt).toBe(now + 100_000);
  // the policy host fails from now on: the policy stays in force until it expires
  server.set('refresh.test', { certificate: await certFor('refresh.test'), status: 500, body: 'oops\n' });
  now += 60_000;
  expect((await p.lookup('refresh.test')).policy).toMatchObject({ id: 'f1', expiresAt: refreshed.expiresAt });
  await p.idle(5000);
  expect(requestsFor('refresh.test')).toBe(3);
  expect((await p.lookup('refresh.test')).policy).toMatchObject({ id: 'f1', mode: 'enforce' });
  now = refreshed.expiresAt + 1; // expired, and not to be had again: no policy, the failure reported
  const expired = await p.lookup('refresh.test');
  expect(expired.policy).toBeUndefined();
  expect(expired.error).toMatchObject({ result: 'sts-policy-fetch-error' });
});
