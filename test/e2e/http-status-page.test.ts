// The status page in a real browser (Debian's chromium, headless) while the relay has mail
// queued, delivered, bounced and paused: its content is read from the DOM chromium built, a
// screenshot is kept in test-artifacts/. Reply texts and addresses with markup in them (a
// hostile MX, a hostile client) must show as text, never become elements.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DOMAIN, Harness, rawMessage, startHarness, submit, submitError, waitForLog } from '../helpers/relay-harness';
import { connectRaw } from '../helpers/raw-smtp';
import { get } from '../helpers/http-client';
import { Sink, startSink } from '../helpers/sink';

const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');
const HOSTILE_REPLY = `4.3.0 <script>document.title='pwned'</script><b id="injected">boo</b> try later`;
// smtp-server refuses < and > in an address (501), but takes quotes, apostrophes and & in a local part
const HOSTILE_SENDER = `o'ne"il&amp;x@evil.test`;

let h: Harness;
let mx: Sink;
let slow: Sink;

beforeAll(async () => {
  mx = await startSink({
    host: '127.0.0.3',
    onRcpt(rcpt) {
      if (rcpt.startsWith('nobody@')) return { code: 550, message: '5.1.1 no such user here' };
      if (rcpt.startsWith('evil@')) return { code: 451, message: HOSTILE_REPLY };
      return undefined;
    },
  });
  slow = await startSink({ host: '127.0.0.4', port: mx.port, onRcpt: () => ({ code: 421, message: '4.7.0 [TSS04] Messages from 127.0.0.2 temporarily deferred due to unexpected volume' }) });
  h = await startHarness({ RELAY_MX_PORT: String(mx.port), RELAY_RETRY_SCHEDULE: '1h', RELAY_HTTP_LISTEN: '127.0.0.1:0', RELAY_TRUSTED_NETWORKS: '127.0.0.1/32' });
  for (const domain of ['dest.test', DOMAIN]) h.dns.set(domain, 'MX', [{ exchange: 'mx.dest.test', priority: 10 }]);
  h.dns.set('mx.dest.test', 'A', ['127.0.0.3']);
  h.dns.set('slow.test', 'MX', [{ exchange: 'mx.slow.test', priority: 10 }]);
  h.dns.set('mx.slow.test', 'A', ['127.0.0.4']);
});

afterAll(async () => {
  await h?.stop();
  await Promise.all([mx?.close(), slow?.close()]);
});

function chromium(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=${path.join(h.dir, 'chromium')}`, ...args],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(new Error(`chromium failed: ${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

test('the page shows queued, delivered, bounced and paused mail, refusals, keys and identity; hostile text stays text', async () => {
  await submit(h, { to: ['user1@dest.test'] });
  await submit(h, { to: ['user2@dest.test'] });
  await submit(h, { to: ['nobody@dest.test'] });
  await submit(h, { to: ['evil@dest.test'] });
  await submit(h, { to: ['someone@slow.test'] });
  const refused = await submitError(h, { from: 'app@nokey.test', raw: rawMessage('app@nokey.test', 'user@dest.test') });
  expect(refused.code).toBe(550);
  const remote = await connectRaw(h.relay.ports.starttls, '127.0.0.9');
  await remote.reply();
  await remote.command('EHLO client.test');
  expect(await remote.command(`MAIL FROM:<${HOSTILE_SENDER}>`)).toMatch(/^530 5\.7\.0/);
  remote.end();
  await mx.waitForMessages(3, 20_000); // 2 delivered + the bounce
  await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.recipient === 'evil@dest.test', 20_000);
  await waitForLog(h, (l) => typeof l.msg === 'string' && l.msg.includes('throttles us'), 20_000);
  await waitForLog(h, (l) => l.msg === 'delivery attempt' && l.recipient === `app@${DOMAIN}` && l.outcome === 'delivered', 20_000);

  const url = `http://127.0.0.1:${h.relay.http!.port}/`;
  const direct = await get(h.relay.http!.port, '/');
  expect(direct.headers.get('content-type')).toBe('text/html; charset=utf-8');
  expect(direct.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
  // self-contained: nothing is loaded from anywhere
  expect(direct.body).not.toMatch(/<(script|link|img|iframe)\b|\b(src|href)=/i);

  const dom = await chromium(['--dump-dom', url]);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.writeFileSync(path.join(ARTIFACTS, 'status-page.html'), dom);
  await chromium([`--screenshot=${path.join(ARTIFACTS, 'status-page.png')}`, '--window-size=1280,2200', '--hide-scrollbars', url]);
  expect(fs.statSync(path.join(ARTIFACTS, 'status-page.png')).size).toBeGreaterThan(10_000);

  // hostile text: shown as text, never elements, and no script ran
  expect(dom).not.toMatch(/<b id="injected">|<script/i);
  expect(dom).toContain('&lt;b id="injected"&gt;boo&lt;/b&gt;');
  // "&amp;" given by the client is the text "&amp;" in the DOM (serialized "&amp;amp;"), not "&"
  expect(dom).toContain(`o'ne"il&amp;amp;x@evil.test`);
  expect(dom).toMatch(/<title>dkim-relay status<\/title>/);

  const section = (id: string) => {
    const m = new RegExp(`<section id="${id}">([\\s\\S]*?)</section>`).exec(dom);
    if (!m) throw new Error(`no section ${id} in the page`);
    return m[1];
  };
  // since start: 5 accepted, 2 refused, 3 delivered (two and the bounce), 1 bounced
  const totals = section('totals');
  expect(totals).toMatch(/data-total="accepted">5</);
  expect(totals).toMatch(/data-total="refused">2</);
  expect(totals).toMatch(/data-total="delivered">3</);
  expect(totals).toMatch(/data-total="bounced">1</);
  // queued: evil@dest.test deferred with the class and explanation of its reply; slow.test waiting out the pause
  const queue = section('queue');
  expect(queue).toMatch(/<tr data-domain="dest\.test"><td>dest\.test<\/td><td>0<\/td><td>1<\/td>/);
  expect(queue).toMatch(/<span class="cls">transient<\/span>/);
  expect(queue).toMatch(/<tr data-domain="slow\.test">[\s\S]*?\[TSS04\][\s\S]*?<span class="cls">rate-limit<\/span>/);
  // paused, and until when
  const paused = section('paused');
  expect(paused).toMatch(/<tr data-provider="mx\.slow\.test"><td>mx\.slow\.test<\/td><td>\d{4}-\d\d-\d\dT[\d:.]+Z<\/td>/);
  // refusals at submission, newest first
  const refusals = section('refusals');
  expect(refusals).toMatch(/MAIL FROM[\s\S]*530 5\.7\.0 authentication required[\s\S]*DATA[\s\S]*550 5\.7\.1 no DKIM key for nokey\.test/);
  // keys and identity
  expect(section('keys')).toMatch(/<tr data-key="example\.org\/s1"><td>example\.org<\/td><td>s1<\/td><td>rsa 2048<\/td><td><span class="state-active">active<\/span>/);
  const identity = section('identity');
  expect(identity).toMatch(/HELO <b>relay\.example\.net<\/b>/);
  expect(identity).toMatch(/IPv4 127\.0\.0\.2 as relay\.example\.net/);
  expect(identity).toMatch(/identity\.ptr/);
  // the chart: bars and a legend entry for the provider that delivered
  const chart = section('chart');
  expect(chart).toMatch(/<svg[^>]*>[\s\S]*<rect [^>]*><title>mx\.dest\.test: 3 at/);
  expect(chart).toMatch(/<li data-provider="mx\.dest\.test">[\s\S]*?mx\.dest\.test: 3<\/li>/);
}, 180_000);
