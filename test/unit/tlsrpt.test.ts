// The TLS report parts that need no network: the _smtp._tls record reading (RFC 8460 3), the
// collector's counting, bounds and file (records survive a new collector on the same data
// dir), and the report JSON built from it (RFC 8460 4.4).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { TlsOutcome } from '../../src/delivery/tls-outcome';
import { MAX_DETAILS_PER_POLICY, recordsFile, TlsReportCollector } from '../../src/tlsrpt/collector';
import { readTlsRptRecords } from '../../src/tlsrpt/policy-record';
import { buildReport, reportFileName } from '../../src/tlsrpt/report-json';
import { retryDelay } from '../../src/tlsrpt/sender';

const log = pino({ level: 'silent' });
const DAY = 86_400_000;
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsrpt-unit-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function outcome(over: Partial<TlsOutcome> = {}): TlsOutcome {
  return {
    domain: 'example.com', mxHost: 'mx1.example.com', ip: '192.0.2.10',
    policy: { type: 'no-policy-found', domain: 'example.com' }, level: 'opportunistic', verified: false,
    at: Date.parse('2026-12-03T10:00:00Z'), ...over,
  };
}

test('the _smtp._tls record: exactly one v=TLSRPTv1 record with a usable rua', () => {
  expect(readTlsRptRecords(['v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/x'])).toMatchObject({
    ok: true, targets: [{ kind: 'mailto', address: 'tls@example.com' }, { kind: 'https', uri: 'https://r.example.com/x' }],
  });
  expect(readTlsRptRecords(['v=TLSRPTv1;rua=mailto:a%2Bb@example.com;'])).toMatchObject({ ok: true, targets: [{ address: 'a+b@example.com' }] });
  expect(readTlsRptRecords(['v=spf1 -all'])).toEqual({ ok: false, reason: 'no v=TLSRPTv1 record' });
  expect(readTlsRptRecords(['v=TLSRPTv1; rua=mailto:a@example.com', 'v=TLSRPTv1; rua=mailto:b@example.com']).ok).toBe(false);
  expect(readTlsRptRecords(['v=TLSRPTv1; rua=http://insecure.example.com/']).ok).toBe(false);
  expect(readTlsRptRecords(['v=TLSRPTv1; rua=mailto:a@example.com%0D%0ABcc:x@evil.test']).ok).toBe(false);
  expect(readTlsRptRecords(['v=TLSRPTv1']).ok).toBe(false);
});

test('connections are counted per domain and policy; clear text is a failure; records survive a new collector', async () => {
  const now = Date.parse('2026-12-03T12:00:00Z');
  const c = new TlsReportCollector({ dataDir: dir, intervalMs: DAY, log, now: () => now, sendingIp: () => '198.51.100.25' });
  c.record(outcome());
  c.record(outcome({ domain: 'Example.COM.' }));
  c.record(outcome({ level: 'none' })); // clear text without a failure given: not a successful TLS session
  c.record(outcome({ level: 'none', failure: { result: 'validation-failure', reason: 'handshake\r\nfailed' } }));
  c.record(outcome({ level: 'none', failure: { result: 'validation-failure', reason: 'handshake\r\nfailed' } }));
  c.record(outcome({ policy: { type: 'sts', domain: 'example.com', string: ['version: STSv1', 'mode: testing'], mxHost: ['*.example.com'] }, level: 'sts', verified: true }));
  await c.stop();

  const again = new TlsReportCollector({ dataDir: dir, intervalMs: DAY, log, now: () => now });
  const period = again.periodAt(now)!;
  expect(period.start).toBe(Date.parse('2026-12-03T00:00:00Z')); // the UTC day
  const report = buildReport(period, 'example.com', period.domains['example.com'], { org: 'Org', contact: 'postmaster@relay.test', submitter: 'relay.test' });
  expect(report['date-range']).toEqual({ 'start-datetime': '2026-12-03T00:00:00Z', 'end-datetime': '2026-12-04T00:00:00Z' });
  expect(report['report-id']).toBe('2026-12-03T00:00:00Z_example.com@relay.test');
  expect(report.policies).toEqual([
    {
      policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'example.com' },
      summary: { 'total-successful-session-count': 2, 'total-failure-session-count': 3 },
      'failure-details': [
        { 'result-type': 'starttls-not-supported', 'sending-mta-ip': '198.51.100.25', 'receiving-mx-hostname': 'mx1.example.com', 'receiving-ip': '192.0.2.10', 'failed-session-count': 1, 'failure-reason-code': 'the session ran without TLS' },
        { 'result-type': 'validation-failure', 'sending-mta-ip': '198.51.100.25', 'receiving-mx-hostname': 'mx1.example.com', 'receiving-ip': '192.0.2.10', 'failed-session-count': 2, 'failure-reason-code': 'handshake failed' },
      ],
    },
    {
      policy: { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: testing'], 'policy-domain': 'example.com', 'mx-host': ['*.example.com'] },
      summary: { 'total-successful-session-count': 1, 'total-failure-session-count': 0 },
    },
  ]);
  expect(reportFileName(period, 'example.com', 'relay.test')).toBe('relay.test!example.com!1796256000!1796342400.json.gz');
  expect(fs.statSync(recordsFile(dir)).mode & 0o777).toBe(0o600);
});

test('failure details are bounded, counts are not; a connection of an ended period counts in the current one', async () => {
  let now = Date.parse('2026-12-03T12:00:00Z');
  const c = new TlsReportCollector({ dataDir: dir, intervalMs: DAY, log, now: () => now });
  for (let i = 0; i < MAX_DETAILS_PER_POLICY + 30; i++) {
    c.record(outcome({ ip: `192.0.2.${i % 250}`, mxHost: `mx${i}.example.com`, level: 'none', failure: { result: 'starttls-not-supported', reason: 'no' } }));
  }
  const policy = c.periodAt(now)!.domains['example.com'].policies[0];
  expect(policy.failure).toBe(MAX_DETAILS_PER_POLICY + 30);
  expect(policy.details).toHaveLength(MAX_DETAILS_PER_POLICY);
  expect(policy.detailsDropped).toBe(30);

  now = Date.parse('2026-12-04T00:00:01Z'); // the day has ended: the sender may have reported it already
  c.record(outcome({ at: Date.parse('2026-12-03T23:59:59Z') }));
  expect(c.periodAt(now)!.domains['example.com'].policies[0].success).toBe(1);
  expect(c.ended(now).map((p) => p.start)).toEqual([Date.parse('2026-12-03T00:00:00Z')]);
  await c.stop();
});

test('a damaged records file is reported and replaced, not fatal', async () => {
  fs.mkdirSync(path.dirname(recordsFile(dir)), { recursive: true });
  fs.writeFileSync(recordsFile(dir), '{"version": 1, "periods": [');
  const lines: string[] = [];
  const c = new TlsReportCollector({ dataDir: dir, intervalMs: DAY, log: pino({ level: 'error' }, { write: (l: string) => lines.push(l) }) });
  expect(lines.join('')).toMatch(/TLS report records are damaged; counting starts afresh/);
  c.record(outcome({ at: Date.now() }));
  await c.stop();
  expect(JSON.parse(fs.readFileSync(recordsFile(dir), 'utf8')).periods).toHaveLength(1);
});

test('retries: 1, 5, 25 minutes, never longer than a period', () => {
  expect([1, 2, 3].map((n) => retryDelay(n, DAY))).toEqual([60_000, 300_000, 1_500_000]);
  expect(retryDelay(1, 2000)).toBe(2000);
});
