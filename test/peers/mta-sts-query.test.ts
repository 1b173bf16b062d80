// Debian's postfix-mta-sts-resolver (mta-sts-query, the MTA-STS resolver Postfix uses) and the
// relay judge the same policies, served over real DNS and HTTPS on loopback: valid ones
// (same mode, mx and max_age), none published, and ones to refuse (untrusted or wrong-name
// certificate, redirect, oversized, not text/plain, invalid). test/helpers/mta_sts_query.py
// runs its resolver unchanged and only points its DNS and HTTPS connections at the test servers.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { createResolver } from '../../src/dns/resolver';
import { MtaStsPolicies } from '../../src/delivery/mta-sts';
import { createTrustStore } from '../../src/delivery/trust-store';
import { startDnsServer, TestDnsServer } from '../helpers/dns-server';
import { PolicyAnswer, PolicyServer, policyText, startPolicyServer } from '../helpers/mta-sts-server';
import { createTestCa, TestCa } from '../helpers/test-ca';

jest.setTimeout(60_000);

const QUERY = path.join(__dirname, '..', 'helpers', 'mta_sts_query.py');
const POLICY_IP = '127.0.0.12';
let ca: TestCa;
let dns: TestDnsServer;
let server: PolicyServer;
let dir: string;

beforeAll(async () => {
  ca = await createTestCa();
  dns = await startDnsServer({ host: '127.0.0.1' });
  server = await startPolicyServer(POLICY_IP, await ca.issue(['mta-sts.default.test']));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-sts-peer-'));
});

afterAll(async () => {
  await server?.close();
  await dns?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Verdict { result: 'VALID' | 'NONE' | 'FETCH_ERROR'; id?: string; policy?: { mode: string; mx: string[]; max_age: number } }

async function theirs(domain: string): Promise<Verdict> {
  const { stdout } = await promisify(execFile)('/usr/bin/python3', [QUERY, domain, dns.host, String(dns.port), String(server.port), ca.file], { timeout: 30_000 });
  const v = JSON.parse(stdout) as Verdict;
  if (v.policy) v.policy.mx = [...v.policy.mx].sort();
  return v;
}

async function ours(domain: string): Promise<Verdict> {
  const policies = new MtaStsPolicies({
    resolver: createResolver({ servers: [dns.address], timeoutSeconds: 2 }),
    trust: createTrustStore(ca.file),
    dataDir: fs.mkdtempSync(path.join(dir, 'data-')), // no cache: each verdict fresh
    log: pino({ level: 'silent' }),
    port: server.port,
    timeoutMs: 5000,
  });
  const state = await policies.lookup(domain);
  if (state.policy) return { result: 'VALID', id: state.policy.id, policy: { mode: state.policy.mode, mx: [...state.policy.mx].sort(), max_age: state.policy.maxAge } };
  return { result: state.error ? 'FETCH_ERROR' : 'NONE' };
}

const other = () => createTestCa('a CA nobody trusts');

const CASES: [string, () => Promise<PolicyAnswer | undefined>, Verdict['result']][] = [
  ['enforce', async () => ({ mode: 'enforce', mx: ['mx1.enforce.test', '*.mail.enforce.test'], maxAge: 604800 }), 'VALID'],
  ['testing', async () => ({ mode: 'testing', mx: ['mx.testing.test'], maxAge: 86400 }), 'VALID'],
  ['none', async () => ({ mode: 'none', mx: [], maxAge: 3600 }), 'VALID'],
  ['unpublished', async () => undefined, 'NONE'],
  ['untrusted', async () => ({ mode: 'enforce', mx: ['mx.untrusted.test'], certificate: await (await other()).issue(['mta-sts.untrusted.test']) }), 'FETCH_ERROR'],
  ['wrongname', async () => ({ mode: 'enforce', mx: ['mx.wrongname.test'], certificate: await ca.issue(['mta-sts.somewhere-else.test']) }), 'FETCH_ERROR'],
  ['redirect', async () => ({ status: 301, headers: { location: 'https://mta-sts.enforce.test/.well-known/mta-sts.txt' }, body: '' }), 'FETCH_ERROR'],
  ['oversized', async () => ({ body: policyText({ mode: 'enforce', mx: ['mx.oversized.test'] }) + `#${'x'.repeat(70_000)}\n` }), 'FETCH_ERROR'],
  ['html', async () => ({ mode: 'enforce', mx: ['mx.html.test'], headers: { 'content-type': 'text/html' } }), 'FETCH_ERROR'],
  ['invalid', async () => ({ body: 'version: STSv1\nmode: enforce\nmax_age: 600\n' }), 'FETCH_ERROR'],
];

test.each(CASES)('%s: mta-sts-query and the relay reach the same verdict', async (name, answer, expected) => {
  const domain = `${name}.test`;
  const a = await answer();
  if (a) {
    dns.set(`_mta-sts.${domain}`, 'TXT', ['v=STSv1; id=20261203T1200']);
    dns.set(`mta-sts.${domain}`, 'A', [POLICY_IP]);
    server.set(domain, { certificate: a.certificate ?? await ca.issue([`mta-sts.${domain}`]), ...a });
  } else {
    dns.set(domain, 'MX', [{ exchange: `mx.${domain}`, priority: 10 }]); // the domain exists, without _mta-sts
  }
  const [peer, relay] = await Promise.all([theirs(domain), ours(domain)]);
  expect(peer.result).toBe(expected);
  expect(relay).toEqual(peer);
  // where the certificate is acceptable, both really asked the policy server
  if (a && !a.certificate) expect(server.requests.filter((r) => r === `mta-sts.${domain}`)).toHaveLength(2);
});
