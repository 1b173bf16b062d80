// TLS reports (RFC 8460) end to end, over real SMTP, DNS and HTTPS on loopback, with a
// reporting period of 10 s. The relay delivers to sink MX hosts of several domains; those
// that publish _smtp._tls get a report after the period: by mail at reports.test's MX (DKIM
// verified with python3-dkim, read with Python's email package, its gunzipped JSON checked
// against RFC 8460's report schema with python3-jsonschema) or by POST to an HTTPS server
// with a certificate of a test CA. Also: no report without the record, none over a
// certificate the relay cannot validate, records that survive a restart in the middle of a
// period, failures (a STARTTLS handshake that fails, a server without STARTTLS) in
// failure-details, and no report about the reports themselves.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { generateKey } from '../../src/dkim/keygen';
import { verifyDkim } from '../helpers/dkim-verify';
import { DOMAIN, HELO, Harness, logLines, RELAY_IP, rawMessage, startHarness, submit, waitForLog } from '../helpers/relay-harness';
import { Sink, SinkMessage, startSink, testCertificate } from '../helpers/sink';
import { createTestCa } from '../helpers/test-ca';

const INTERVAL_MS = 10_000;
const ORG = 'Example Relay Operators';

let h: Harness;
const sinks: Sink[] = [];
let reportsMx: Sink; // reports.test's MX: where mailto: reports arrive (127.0.0.4)
let destMx: Sink; // dest.test (127.0.0.3)
let brokenBackend: Sink; // behind the STARTTLS breaker of broken.test (127.0.0.5)
let breaker: net.Server;
let goodHttps: HttpsReceiver; // tlsrpt.reports.test, certificate of the test CA
let badHttps: HttpsReceiver; // bad.reports.test, a certificate the relay does not trust

interface Posted { method: string; url: string; headers: Record<string, string | string[] | undefined>; body: Buffer }
interface HttpsReceiver { server: https.Server; port: number; posts: Posted[]; connections: number }

async function startHttps(key: string, cert: string): Promise<HttpsReceiver> {
  const receiver: HttpsReceiver = { server: undefined as unknown as https.Server, port: 0, posts: [], connections: 0 };
  receiver.server = https.createServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      receiver.posts.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200).end('thanks');
    });
  });
  receiver.server.on('connection', () => receiver.connections++);
  receiver.server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
  receiver.port = (receiver.server.address() as net.AddressInfo).port;
  return receiver;
}

/**
 * An MX whose STARTTLS fails: it passes the SMTP dialogue on to `backend`, but answers
 * STARTTLS itself with 220 and then sends bytes that are no TLS handshake. The relay then
 * delivers in clear (opportunistic TLS), through to the backend sink.
 */
async function startStarttlsBreaker(host: string, port: number, backend: Sink): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect(backend.port, backend.host);
    let clear = false; // MAIL FROM seen: the rest is passed on as it is
    upstream.on('data', (d) => client.write(d));
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.end());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    let broken = false;
    client.on('data', (d: Buffer) => {
      if (broken) {
        client.end('this is no TLS handshake\r\n');
        upstream.destroy();
        return;
      }
      const text = d.toString('latin1').toUpperCase();
      if (!clear && text.startsWith('STARTTLS')) {
        broken = true;
        client.write('220 2.0.0 Ready to start TLS\r\n');
        return;
      }
      if (text.startsWith('MAIL FROM')) clear = true;
      upstream.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return server;
}

function parseReport(data: Buffer): ParsedReport {
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, '..', 'helpers', 'parse_tlsrpt.py'), 'mail'], { input: data });
  return JSON.parse(out.toString()) as ParsedReport;
}

function parseGzip(body: Buffer): Pick<ParsedReport, 'report' | 'schema_errors'> {
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, '..', 'helpers', 'parse_tlsrpt.py'), 'gzip'], { input: body });
  return JSON.parse(out.toString()) as ParsedReport;
}

interface ReportJson {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: { policy: Record<string, unknown>; summary: Record<string, number>; 'failure-details'?: Record<string, unknown>[] }[];
}

interface ParsedReport {
  defects: string[];
  headers: Record<string, string>;
  content_type: string;
  report_type: string;
  parts: { content_type: string; filename: string | null; disposition: string | null; cte: string | null }[];
  text?: string;
  report: ReportJson;
  schema_errors: string[];
}

function reportFor(domain: string): SinkMessage | undefined {
  return reportsMx.messages.find((m) => m.data.includes(`\r\nTLS-Report-Domain: ${domain}\r\n`));
}

async function waitFor<T>(what: string, get: () => T | undefined, timeoutMs = 40_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: nothing within ${timeoutMs} ms; log: ${h.logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function deliver(domain: string, subject: string): Promise<number> {
  const { response } = await submit(h, { to: [`user@${domain}`], raw: rawMessage(`app@${DOMAIN}`, `user@${domain}`, { subject }) });
  const id = /queued as ([0-9A-Z]+)$/.exec(response)![1];
  const line = await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.id === id && l.outcome === 'delivered', 20_000);
  return Number(line.time);
}

const times: Record<string, number[]> = {};
let restartedAt = 0;

beforeAll(async () => {
  const ca = await createTestCa();
  const good = await ca.issue(['tlsrpt.reports.test']);
  const self = await testCertificate(); // not from the CA
  goodHttps = await startHttps(good.key, good.cert);
  badHttps = await startHttps(self.key, self.cert);

  destMx = await startSink({ host: '127.0.0.3' });
  const port = destMx.port;
  reportsMx = await startSink({ host: '127.0.0.4', port });
  brokenBackend = await startSink({ host: '127.0.0.5' });
  breaker = await startStarttlsBreaker('127.0.0.5', port, brokenBackend);
  const plainMx = await startSink({ host: '127.0.0.6', port, tls: false });
  const nopolicyMx = await startSink({ host: '127.0.0.7', port });
  const httpsMx = await startSink({ host: '127.0.0.8', port });
  const badcertMx = await startSink({ host: '127.0.0.10', port });
  sinks.push(destMx, reportsMx, brokenBackend, plainMx, nopolicyMx, httpsMx, badcertMx);

  h = await startHarness({ RELAY_MX_PORT: String(port), RELAY_TLSRPT_INTERVAL: `${INTERVAL_MS / 1000}s`, RELAY_TLSRPT_ORG: ORG });
  const caFile = path.join(h.dir, 'test-ca.pem');
  fs.writeFileSync(caFile, ca.cert);
  const mx: Record<string, string> = {
    'dest.test': '127.0.0.3', 'reports.test': '127.0.0.4', 'broken.test': '127.0.0.5', 'plain.test': '127.0.0.6',
    'nopolicy.test': '127.0.0.7', 'https.test': '127.0.0.8', 'badcert.test': '127.0.0.10',
  };
  for (const [domain, ip] of Object.entries(mx)) {
    h.dns.set(domain, 'MX', [{ exchange: `mx.${domain}`, priority: 10 }]);
    h.dns.set(`mx.${domain}`, 'A', [ip]);
  }
  for (const domain of ['dest.test', 'broken.test', 'plain.test', 'reports.test']) {
    h.dns.set(`_smtp._tls.${domain}`, 'TXT', ['v=TLSRPTv1; rua=mailto:tlsrpt@reports.test']);
  }
  h.dns.set('_smtp._tls.https.test', 'TXT', [`v=TLSRPTv1;rua=https://tlsrpt.reports.test:${goodHttps.port}/v1/tlsrpt`]);
  h.dns.set('_smtp._tls.badcert.test', 'TXT', [`v=TLSRPTv1; rua=https://bad.reports.test:${badHttps.port}/`]);
  h.dns.set('tlsrpt.reports.test', 'A', ['127.0.0.1']);
  h.dns.set('bad.reports.test', 'A', ['127.0.0.1']);
  h.dns.set('_smtp._tls.nopolicy.test', 'TXT', ['v=spf1 -all']); // a TXT record, but not TLSRPT
  // A key for the HELO name's domain: the relay's own mail (bounces, reports) is signed with it.
  const key = await generateKey(path.join(h.dir, 'keys'), { domain: 'example.net', selector: 'r1', algorithm: 'rsa', bits: 2048 });
  h.dns.set(key.recordName, 'TXT', [key.recordValue]);
  h.records[key.recordName] = key.recordValue;
  await h.restart({ RELAY_DELIVERY_CA_FILE: caFile }); // sees (and activates) the new key, trusts the CA

  // The first delivery early in a period, so the restart below falls in the middle of it.
  while (Date.now() % INTERVAL_MS > 1000) await new Promise((r) => setTimeout(r, 100));
  times['dest.test'] = [await deliver('dest.test', 'before the restart')];
  restartedAt = Date.now();
  await h.restart({ RELAY_DELIVERY_CA_FILE: caFile });
  times['dest.test'].push(await deliver('dest.test', 'after the restart'));
  for (const domain of ['broken.test', 'plain.test', 'nopolicy.test', 'https.test', 'badcert.test']) {
    times[domain] = [await deliver(domain, `to ${domain}`)];
  }
}, 90_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all(sinks.map((s) => s.close()));
  breaker?.close();
  goodHttps?.server.close();
  badHttps?.server.close();
});

function checkPeriod(report: ReportJson, deliveredAt: number[]): void {
  const start = Date.parse(report['date-range']['start-datetime']);
  const end = Date.parse(report['date-range']['end-datetime']);
  expect(end - start).toBe(INTERVAL_MS);
  expect(start % INTERVAL_MS).toBe(0);
  for (const t of deliveredAt) {
    expect(t).toBeGreaterThanOrEqual(start);
    expect(t).toBeLessThan(end + 1000); // a connection opened just before the end is logged just after it
  }
}

test('a mailto: report arrives after the period: DKIM-signed, RFC 8460 headers and media types, schema-valid JSON with the right counts; records survived a restart mid-period', async () => {
  const msg = await waitFor('report for dest.test', () => reportFor('dest.test'));
  expect(msg.mailFrom).toBe('');
  expect(msg.rcptTo).toEqual(['tlsrpt@reports.test']);
  expect(msg.remoteAddress).toBe(RELAY_IP);

  const verdict = await verifyDkim(msg.data, h.records);
  expect(verdict.ok).toBe(true);
  expect(verdict.signatures[0]).toMatchObject({ d: 'example.net', s: 'r1' });

  const parsed = parseReport(msg.data);
  expect(parsed.defects).toEqual([]);
  expect(parsed.schema_errors).toEqual([]);
  expect(parsed.content_type).toBe('multipart/report');
  expect(parsed.report_type).toBe('tlsrpt');
  expect(parsed.parts.map((p) => p.content_type)).toEqual(['text/plain', 'application/tlsrpt+gzip']);
  const { report } = parsed;
  const [startS, endS] = [Date.parse(report['date-range']['start-datetime']) / 1000, Date.parse(report['date-range']['end-datetime']) / 1000];
  expect(parsed.parts[1]).toMatchObject({ disposition: 'attachment', cte: 'base64', filename: `${HELO}!dest.test!${startS}!${endS}.json.gz` });
  expect(parsed.headers['TLS-Report-Domain']).toBe('dest.test');
  expect(parsed.headers['TLS-Report-Submitter']).toBe(HELO);
  expect(parsed.headers.Subject).toBe(`Report Domain: dest.test Submitter: ${HELO} Report-ID: <${report['report-id']}>`);
  expect(parsed.headers.From).toBe(`TLS Reporting <MAILER-DAEMON@${HELO}>`);
  expect(parsed.headers['TLS-Required']).toBe('No');

  expect(report['organization-name']).toBe(ORG);
  expect(report['contact-info']).toBe(`postmaster@${HELO}`);
  checkPeriod(report, times['dest.test']);
  expect(restartedAt).toBeLessThan(Date.parse(report['date-range']['end-datetime'])); // the restart was inside the period
  expect(report.policies).toEqual([{
    policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'dest.test' },
    summary: { 'total-successful-session-count': 2, 'total-failure-session-count': 0 },
  }]);
  expect(destMx.connections.filter((c) => c.remoteAddress === RELAY_IP)).toHaveLength(2);
}, 60_000);

test('a STARTTLS handshake that fails, and a server without STARTTLS, show in failure-details', async () => {
  const broken = parseReport((await waitFor('report for broken.test', () => reportFor('broken.test'))).data);
  expect(broken.schema_errors).toEqual([]);
  checkPeriod(broken.report, times['broken.test']);
  expect(broken.report.policies).toEqual([{
    policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'broken.test' },
    summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 },
    'failure-details': [{
      'result-type': 'validation-failure', 'sending-mta-ip': RELAY_IP, 'receiving-mx-hostname': 'mx.broken.test',
      'receiving-ip': '127.0.0.5', 'failed-session-count': 1, 'failure-reason-code': expect.stringMatching(/STARTTLS was offered/),
    }],
  }]);
  expect(brokenBackend.messages.map((m) => m.secure)).toEqual([false]); // delivered, in clear

  const plain = parseReport((await waitFor('report for plain.test', () => reportFor('plain.test'))).data);
  expect(plain.schema_errors).toEqual([]);
  expect(plain.report.policies[0].summary).toEqual({ 'total-successful-session-count': 0, 'total-failure-session-count': 1 });
  expect(plain.report.policies[0]['failure-details']).toEqual([expect.objectContaining({
    'result-type': 'starttls-not-supported', 'receiving-mx-hostname': 'mx.plain.test', 'receiving-ip': '127.0.0.6', 'failed-session-count': 1,
  })]);
}, 60_000);

test('an https: rua gets a POST of the gzipped report over a certificate of the configured CA', async () => {
  const post = await waitFor('POST for https.test', () => goodHttps.posts[0]);
  expect(post.method).toBe('POST');
  expect(post.url).toBe('/v1/tlsrpt');
  expect(post.headers['content-type']).toBe('application/tlsrpt+gzip');
  const { report, schema_errors: errors } = parseGzip(post.body);
  expect(errors).toEqual([]);
  checkPeriod(report, times['https.test']);
  expect(report.policies).toEqual([{
    policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'https.test' },
    summary: { 'total-successful-session-count': 1, 'total-failure-session-count': 0 },
  }]);
  await waitForLog(h, (l) => l.msg === 'TLS report for https.test posted' && l.status === 200);
}, 60_000);

test('a report is not POSTed to a server whose certificate does not validate', async () => {
  const line = await waitForLog(h, (l) => /^TLS report for badcert\.test not sent yet/.test(String(l.msg)), 40_000);
  expect(String(line.err)).toMatch(/certificate/i);
  expect(badHttps.connections).toBeGreaterThan(0); // it was tried...
  expect(badHttps.posts).toHaveLength(0); // ...but nothing was sent
}, 60_000);

test('no report for a domain without a TLSRPT record', async () => {
  await waitFor('report for dest.test', () => reportFor('dest.test'));
  await waitForLog(h, (l) => l.msg === 'no TLS report for nopolicy.test: _smtp._tls.nopolicy.test has no v=TLSRPTv1 record', 20_000);
  expect(reportFor('nopolicy.test')).toBeUndefined();
  expect(goodHttps.posts.filter((p) => parseGzip(p.body).report.policies.some((x) => x.policy['policy-domain'] === 'nopolicy.test'))).toHaveLength(0);
}, 60_000);

test('no report about the reports: their delivery to reports.test is not counted, though reports.test publishes a record', async () => {
  await waitFor('report for plain.test', () => reportFor('plain.test'));
  const delivered = logLines(h).filter((l) => l.msg === 'delivery attempt' && l.domain === 'reports.test' && l.outcome === 'delivered');
  expect(delivered.length).toBeGreaterThanOrEqual(1);
  // Two full periods after the last report was delivered: nothing counted, nothing sent.
  const last = Math.max(...delivered.map((l) => Number(l.time)));
  await new Promise((r) => setTimeout(r, Math.max(0, last + 2 * INTERVAL_MS + 2000 - Date.now())));
  expect(reportFor('reports.test')).toBeUndefined();
  expect(logLines(h).filter((l) => l.domain === 'reports.test' && /TLS report/.test(String(l.msg)))).toEqual([]);
}, 60_000);
