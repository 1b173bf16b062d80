// MTA-STS (RFC 8461) end to end: the relay looks up _mta-sts TXT records in the test DNS,
// fetches policies from an HTTPS server on loopback (certificates from a test CA, trusted
// through RELAY_DELIVERY_CA_FILE), and delivers to sink MX hosts whose certificates name the
// right host, the wrong one, or that offer no STARTTLS. Enforce defers (nothing reaches the
// sink, queue show says why), testing delivers and logs the failure, none is as today, a
// policy that cannot be fetched changes nothing, and a cached policy survives a restart
// while its server is down.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, ensureBuilt, NODE } from '../helpers/built-cli';
import { PolicyAnswer, PolicyServer, startPolicyServer } from '../helpers/mta-sts-server';
import { DOMAIN, Harness, logLines, rawMessage, startHarness, submit, waitForLog } from '../helpers/relay-harness';
import { Sink, startSink } from '../helpers/sink';
import { createTestCa, TestCa } from '../helpers/test-ca';

jest.setTimeout(60_000);

const POLICY_IP = '127.0.0.10';
let ca: TestCa;
let policies: PolicyServer;
let h: Harness;
let good: Sink; // 127.0.0.3: certificate names the mx.*.test hosts below
let wrong: Sink; // 127.0.0.4: certificate names wrong-name.test only
let plain: Sink; // 127.0.0.5: no STARTTLS
let untouched: Sink; // 127.0.0.6: good certificate, but no policy lists it
let selfSigned: Sink; // 127.0.0.7: the sinks' usual self-signed certificate (mx.sink.test)
let expired: Sink; // 127.0.0.8: from the test CA, names its host, but expired

const GOOD_NAMES = ['mx.enforce-ok.test', 'mx.enforce-nomatch.test', 'mx.persist.test', 'mx.mixed.test', 'mx.testing-nomatch.test', 'mx.unlisted-host.test'];

beforeAll(async () => {
  ensureBuilt();
  ca = await createTestCa();
  const goodCert = await ca.issue(GOOD_NAMES);
  good = await startSink({ host: '127.0.0.3', certificate: goodCert });
  wrong = await startSink({ host: '127.0.0.4', port: good.port, certificate: await ca.issue(['wrong-name.test']) });
  plain = await startSink({ host: '127.0.0.5', port: good.port, tls: false });
  untouched = await startSink({ host: '127.0.0.6', port: good.port, certificate: goodCert });
  selfSigned = await startSink({ host: '127.0.0.7', port: good.port });
  expired = await startSink({ host: '127.0.0.8', port: good.port, certificate: await ca.issue(['mx.enforce-expired.test'], { expired: true }) });
  policies = await startPolicyServer(POLICY_IP, await ca.issue(['mta-sts.default.test']));
  h = await startHarness(
    { RELAY_MX_PORT: String(good.port), RELAY_DELIVERY_CA_FILE: ca.file, RELAY_RETRY_SCHEDULE: '1h' },
    { mtaStsPort: policies.port },
  );
});

afterAll(async () => {
  await h?.stop();
  await Promise.all([good?.close(), wrong?.close(), plain?.close(), untouched?.close(), selfSigned?.close(), expired?.close(), policies?.close()]);
});

/** A recipient domain with one MX host at `ip`, and (unless policy is undefined) an MTA-STS policy. */
async function domain(name: string, ip: string, policy?: PolicyAnswer & { id?: string }): Promise<void> {
  h.dns.set(name, 'MX', [{ exchange: `mx.${name}`, priority: 10 }]);
  h.dns.set(`mx.${name}`, 'A', [ip]);
  if (!policy) return;
  h.dns.set(`_mta-sts.${name}`, 'TXT', [`v=STSv1; id=${policy.id ?? '20261203'};`]);
  h.dns.set(`mta-sts.${name}`, 'A', [POLICY_IP]);
  policies.set(name, { certificate: await ca.issue([`mta-sts.${name}`]), mx: [`mx.${name}`], ...policy });
}

function idOf(response: string): string {
  const m = /queued as ([0-9A-Z]+)$/.exec(response);
  if (!m) throw new Error(`not a "queued as" reply: ${response}`);
  return m[1];
}

async function send(to: string, subject: string): Promise<string> {
  return idOf((await submit(h, { to: [to], raw: rawMessage(`app@${DOMAIN}`, to, { subject }) })).response);
}

function attempt(id: string): Promise<Record<string, unknown>> {
  return waitForLog(h, (l) => String(l.msg).startsWith('delivery attempt') && l.id === id, 20_000);
}

function childEnv(): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) clean[k] = v;
  return { ...clean, ...h.env };
}

/** `queue show ID` as an operator runs it, once the spool has the attempt. */
async function queueShow(id: string): Promise<string> {
  for (let i = 0; ; i++) {
    const out = execFileSync(NODE, [BIN, 'queue', 'show', id], { cwd: h.dir, env: childEnv() }).toString();
    if (/last reply/.test(out) || i > 100) return out;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('enforce, MX listed and certificate valid: delivered over verified TLS, tlsLevel sts', async () => {
  await domain('enforce-ok.test', '127.0.0.3', { mode: 'enforce' });
  const id = await send('user@enforce-ok.test', 'sts ok');
  const [msg] = (await good.waitForMessages(1, 20_000)).filter((m) => m.rcptTo.includes('user@enforce-ok.test'));
  expect(msg.secure).toBe(true);
  const line = await attempt(id);
  expect(line).toMatchObject({ outcome: 'delivered', tlsLevel: 'sts', tlsVerified: true, tlsPolicy: 'sts' });
  expect(line.tlsVersion).toMatch(/^TLSv1\.[23]$/);
  expect(line.tlsFailure).toBeUndefined();
  expect(policies.requests).toContain('mta-sts.enforce-ok.test');
  // the policy is cached on disk under the data dir
  const cached = JSON.parse(fs.readFileSync(path.join(h.config.dataDir, 'mta-sts', 'enforce-ok.test.json'), 'utf8')) as Record<string, unknown>;
  expect(cached).toMatchObject({ domain: 'enforce-ok.test', id: '20261203', mode: 'enforce', mx: ['mx.enforce-ok.test'] });
});

test('enforce, certificate names another host: deferred, nothing reaches that MX, queue show says why', async () => {
  await domain('enforce-badcert.test', '127.0.0.4', { mode: 'enforce' });
  const id = await send('user@enforce-badcert.test', 'sts bad cert');
  const line = await attempt(id);
  expect(line).toMatchObject({ outcome: 'deferred', tlsFailure: 'certificate-host-mismatch', class: 'tls' });
  expect(String(line.reply)).toBe('MTA-STS enforce: the certificate of mx.enforce-badcert.test does not name it (it names wrong-name.test)');
  expect(await queueShow(id)).toContain('last reply: MTA-STS enforce: the certificate of mx.enforce-badcert.test does not name it');
  await new Promise((r) => setTimeout(r, 300));
  expect(wrong.messages.filter((m) => m.rcptTo.includes('user@enforce-badcert.test'))).toEqual([]);
  const recipient = ((await h.relay.queue.allEnvelopes(10_000)) ?? []).find((e) => e.id === id)!.recipients[0];
  expect(recipient.status).toBe('queued');
  // the next message within a minute is not tried again; its reply still says why first
  const next = await send('user@enforce-badcert.test', 'sts bad cert 2');
  const held = await attempt(next);
  expect(held).toMatchObject({ msg: 'delivery attempt: destination unreachable', outcome: 'deferred', class: 'tls' });
  expect(String(held.reply)).toMatch(/^MTA-STS enforce: the certificate of mx\.enforce-badcert\.test does not name it .*\(not tried again: \d+ s ago\)$/);
});

test('enforce, MX host not in the policy: deferred without connecting, the reason names host and patterns', async () => {
  await domain('enforce-nomatch.test', '127.0.0.6', { mode: 'enforce', mx: ['*.mail.enforce-nomatch.test'] });
  const id = await send('user@enforce-nomatch.test', 'sts no match');
  const line = await attempt(id);
  expect(line).toMatchObject({ msg: 'delivery attempt: refused by TLS policy', outcome: 'deferred', class: 'tls' });
  const reason = 'MTA-STS enforce: mx.enforce-nomatch.test does not match the policy of enforce-nomatch.test (mx: *.mail.enforce-nomatch.test)';
  expect(line.reply).toBe(reason);
  expect(await queueShow(id)).toContain(`last reply: ${reason}`);
  expect(untouched.connections).toEqual([]);
});

test('enforce, MX offers no STARTTLS: deferred, never sent in clear', async () => {
  await domain('enforce-plain.test', '127.0.0.5', { mode: 'enforce' });
  const id = await send('user@enforce-plain.test', 'sts plain');
  const line = await attempt(id);
  expect(line).toMatchObject({ outcome: 'deferred', tlsFailure: 'starttls-not-supported', tlsLevel: 'none' });
  expect(String(line.reply)).toMatch(/^MTA-STS enforce: mx\.enforce-plain\.test \[127\.0\.0\.5\] does not offer STARTTLS/);
  await new Promise((r) => setTimeout(r, 300));
  expect(plain.messages.filter((m) => m.rcptTo.includes('user@enforce-plain.test'))).toEqual([]);
});

test('enforce, certificate from an unknown CA, or expired: deferred, certificate-not-trusted / certificate-expired', async () => {
  await domain('enforce-selfsigned.test', '127.0.0.7', { mode: 'enforce' });
  await domain('enforce-expired.test', '127.0.0.8', { mode: 'enforce' });
  const [a, b] = [await send('user@enforce-selfsigned.test', 'sts self-signed'), await send('user@enforce-expired.test', 'sts expired')];
  const untrusted = await attempt(a);
  expect(untrusted).toMatchObject({ outcome: 'deferred', tlsFailure: 'certificate-not-trusted' });
  expect(String(untrusted.reply)).toMatch(/^MTA-STS enforce: the certificate of mx\.enforce-selfsigned\.test does not validate \(DEPTH_ZERO_SELF_SIGNED_CERT/);
  const old = await attempt(b);
  expect(old).toMatchObject({ outcome: 'deferred', tlsFailure: 'certificate-expired' });
  expect(String(old.reply)).toMatch(/does not validate \(CERT_HAS_EXPIRED/);
  await new Promise((r) => setTimeout(r, 300));
  expect([...selfSigned.messages, ...expired.messages]).toEqual([]);
});

test('enforce, two MX hosts and only the second listed: mail goes to the listed one only', async () => {
  h.dns.set('mixed.test', 'MX', [{ exchange: 'mx.unlisted-host.test', priority: 10 }, { exchange: 'mx.mixed.test', priority: 20 }]);
  h.dns.set('mx.unlisted-host.test', 'A', ['127.0.0.6']); // valid certificate: only the policy keeps mail away
  h.dns.set('mx.mixed.test', 'A', ['127.0.0.3']);
  h.dns.set('_mta-sts.mixed.test', 'TXT', ['v=STSv1; id=m1']);
  h.dns.set('mta-sts.mixed.test', 'A', [POLICY_IP]);
  policies.set('mixed.test', { certificate: await ca.issue(['mta-sts.mixed.test']), mode: 'enforce', mx: ['mx.mixed.test'] });
  const id = await send('user@mixed.test', 'sts mixed');
  expect(await attempt(id)).toMatchObject({ outcome: 'delivered', host: 'mx.mixed.test', tlsLevel: 'sts', tlsVerified: true });
  expect(good.messages.some((m) => m.rcptTo.includes('user@mixed.test'))).toBe(true);
  expect(untouched.connections).toEqual([]);
});

test('testing, MX host not listed: delivered, the mismatch recorded', async () => {
  await domain('testing-nomatch.test', '127.0.0.3', { mode: 'testing', mx: ['*.elsewhere.test'] });
  const id = await send('user@testing-nomatch.test', 'sts testing nomatch');
  const line = await attempt(id);
  expect(line).toMatchObject({ outcome: 'delivered', tlsLevel: 'opportunistic', tlsVerified: true, tlsFailure: 'validation-failure' });
  expect(line.tlsFailureReason).toBe('mx.testing-nomatch.test does not match the policy of testing-nomatch.test (mx: *.elsewhere.test)');
});

test('testing, certificate names another host: delivered as today, the failure in the log line', async () => {
  await domain('testing-badcert.test', '127.0.0.4', { mode: 'testing' });
  const id = await send('user@testing-badcert.test', 'sts testing');
  const line = await attempt(id);
  expect(line).toMatchObject({
    outcome: 'delivered', tls: true, tlsLevel: 'opportunistic', tlsVerified: false, tlsPolicy: 'sts', tlsFailure: 'certificate-host-mismatch',
  });
  expect(String(line.tlsFailureReason)).toMatch(/does not name it/);
  expect(wrong.messages.some((m) => m.rcptTo.includes('user@testing-badcert.test'))).toBe(true);
});

test('none: delivered as today, no failure recorded', async () => {
  await domain('none.test', '127.0.0.4', { mode: 'none', mx: [] });
  const id = await send('user@none.test', 'sts none');
  const line = await attempt(id);
  expect(line).toMatchObject({ outcome: 'delivered', tlsLevel: 'opportunistic', tlsVerified: false });
  expect(line.tlsFailure).toBeUndefined();
  expect(line.tlsPolicy).toBeUndefined();
});

test('no policy at all: opportunistic as before (the wrong-name certificate is accepted)', async () => {
  await domain('plain-old.test', '127.0.0.4');
  const id = await send('user@plain-old.test', 'no sts');
  expect(await attempt(id)).toMatchObject({ outcome: 'delivered', tls: true, tlsLevel: 'opportunistic', tlsVerified: false, tlsVersion: expect.stringMatching(/^TLSv1\.[23]$/) });
});

test('enforce policy behind an untrusted certificate: not used, delivered as without a policy, sts-webpki-invalid recorded', async () => {
  await domain('untrusted-policy.test', '127.0.0.4', { mode: 'enforce' });
  const other = await createTestCa('some other CA');
  policies.set('untrusted-policy.test', { mode: 'enforce', mx: ['mx.untrusted-policy.test'], certificate: await other.issue(['mta-sts.untrusted-policy.test']) });
  const id = await send('user@untrusted-policy.test', 'sts untrusted');
  const line = await attempt(id);
  expect(line).toMatchObject({ outcome: 'delivered', tlsPolicy: 'sts', tlsFailure: 'sts-webpki-invalid' });
  const warning = logLines(h).find((l) => l.domain === 'untrusted-policy.test' && String(l.msg).includes('could not be fetched'));
  expect(warning).toMatchObject({ result: 'sts-webpki-invalid' });
});

test('RELAY_MTA_STS=off: policies are not looked up; the enforce domain gets opportunistic TLS as before', async () => {
  await h.restart({ RELAY_MTA_STS: 'off' });
  await domain('switched-off.test', '127.0.0.4', { mode: 'enforce' });
  const id = await send('user@switched-off.test', 'sts off');
  const line = await attempt(id);
  expect(line).toMatchObject({ outcome: 'delivered', tlsLevel: 'opportunistic' });
  expect(line.tlsPolicy).toBeUndefined();
  expect(policies.requests).not.toContain('mta-sts.switched-off.test');
  await h.restart(); // on again, as by default
});

test('serve refuses to start with a CA file that holds no certificate, naming the file', () => {
  const bad = path.join(h.dir, 'not-a-ca.pem');
  fs.writeFileSync(bad, 'this is no certificate\n');
  let stderr = '';
  let code = 0;
  try {
    execFileSync(NODE, [BIN, 'serve'], { cwd: h.dir, env: { ...childEnv(), RELAY_DELIVERY_CA_FILE: bad, RELAY_SUBMISSION_PORT: '0' }, stdio: 'pipe', timeout: 30000 });
  } catch (err) {
    const e = err as { status: number; stderr: Buffer };
    code = e.status;
    stderr = e.stderr.toString();
  }
  expect(code).not.toBe(0);
  expect(stderr).toContain(`delivery.caFile (env RELAY_DELIVERY_CA_FILE) ${bad} holds no PEM certificate`);
});

test('a cached enforce policy survives a restart with its policy server down', async () => {
  await domain('persist.test', '127.0.0.3', { mode: 'enforce' });
  const first = await send('user@persist.test', 'sts persist 1');
  expect(await attempt(first)).toMatchObject({ outcome: 'delivered', tlsLevel: 'sts' });
  await h.restart();
  await policies.close();
  // the MX now points at a host whose certificate does not name it; without the cached policy
  // it would be delivered there opportunistically
  h.dns.set('mx.persist.test', 'A', ['127.0.0.4']);
  const second = await send('user@persist.test', 'sts persist 2');
  const line = await attempt(second);
  expect(line).toMatchObject({ outcome: 'deferred', tlsFailure: 'certificate-host-mismatch' });
  expect(String(line.reply)).toMatch(/^MTA-STS enforce: the certificate of mx\.persist\.test does not name it/);
  expect(wrong.messages.filter((m) => m.rcptTo.includes('user@persist.test'))).toEqual([]);
});
