// The HTTP side's pure parts: which listen addresses need a token, and that the status page's
// memory stays bounded (the refusal ring, the 24 hourly slots, the providers with a row).
import { httpSettings, isLoopback } from '../../src/http/listen-settings';
import { HOURS_KEPT, PROVIDERS_KEPT, RecentActivity, REFUSALS_KEPT } from '../../src/http/recent-activity';
import { esc } from '../../src/http/status-page';
import { StartError } from '../../src/start-errors';

test('loopback addresses need no token; anything else does', () => {
  for (const h of ['127.0.0.1', '127.5.6.7', '::1', 'localhost', '::ffff:127.0.0.1']) expect([h, isLoopback(h)]).toEqual([h, true]);
  for (const h of ['0.0.0.0', '::', '192.0.2.1', '2001:db8::1', 'relay.example.net', '128.0.0.1']) expect([h, isLoopback(h)]).toEqual([h, false]);
  expect(httpSettings({ http: { listen: '', token: '' } })).toBeNull();
  expect(httpSettings({ http: { listen: '127.0.0.1:0', token: '' } })).toEqual({ host: '127.0.0.1', port: 0, token: '' });
  expect(httpSettings({ http: { listen: '[::1]:2588', token: '' } })).toEqual({ host: '::1', port: 2588, token: '' });
  expect(httpSettings({ http: { listen: '0.0.0.0:2588', token: 't' } })).toEqual({ host: '0.0.0.0', port: 2588, token: 't' });
  expect(() => httpSettings({ http: { listen: '0.0.0.0:2588', token: '' } })).toThrow(StartError);
  expect(() => httpSettings({ http: { listen: '[2001:db8::1]:2588', token: '' } })).toThrow(/RELAY_HTTP_TOKEN/);
});

test('esc leaves no markup', () => {
  expect(esc(`<script>"x"&'y'</script>`)).toBe('&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;');
  expect(esc(undefined)).toBe('');
});

test('refusals: the last REFUSALS_KEPT, newest first', () => {
  let now = 1_000_000;
  const a = new RecentActivity(() => now);
  for (let i = 0; i < REFUSALS_KEPT + 30; i++) {
    now += 1000;
    a.refused({ stage: 'RCPT TO', code: 550, reason: `r${i}`, client: '192.0.2.1' });
  }
  const kept = a.lastRefusals();
  expect(kept).toHaveLength(REFUSALS_KEPT);
  expect(kept[0].reason).toBe(`r${REFUSALS_KEPT + 29}`);
  expect(kept.at(-1)!.reason).toBe('r30');
  expect(a.totals.refused).toBe(REFUSALS_KEPT + 30);
});

test('deliveries per hour: 24 slots that roll over, providers beyond the limit counted as "other"', () => {
  const HOUR = 3600_000;
  let now = 500 * HOUR + 10;
  const a = new RecentActivity(() => now);
  a.recipientDone('mx.a.test', 'delivered');
  a.recipientDone('mx.a.test', 'delivered');
  a.recipientDone('mx.a.test', 'deferred'); // not a delivery
  now += HOUR;
  a.recipientDone('mx.a.test', 'delivered');
  let h = a.hourlyDeliveries();
  expect(h.hours).toHaveLength(HOURS_KEPT);
  expect(h.hours.at(-1)).toBe(501 * HOUR);
  expect(h.byProvider.get('mx.a.test')!.slice(-2)).toEqual([2, 1]);
  // a day later the old counts are gone, though their slots are reused
  now += (HOURS_KEPT - 1) * HOUR;
  a.recipientDone('mx.a.test', 'delivered');
  h = a.hourlyDeliveries();
  expect(h.byProvider.get('mx.a.test')!.reduce((x, y) => x + y, 0)).toBe(2);
  expect(h.byProvider.get('mx.a.test')![0]).toBe(1); // the hour 501, still inside the day
  now += HOURS_KEPT * HOUR;
  expect(a.hourlyDeliveries().byProvider.size).toBe(0);

  for (let i = 0; i < PROVIDERS_KEPT * 3; i++) a.recipientDone(`mx${i}.test`, 'delivered');
  const rows = a.hourlyDeliveries().byProvider;
  expect(rows.size).toBeLessThanOrEqual(PROVIDERS_KEPT);
  expect(rows.get('other')!.at(-1)).toBe(PROVIDERS_KEPT * 3 - (PROVIDERS_KEPT - 2));
  expect(a.totals.delivered).toBe(4 + PROVIDERS_KEPT * 3);
});

test('pauses: shown until they end, the later end kept', () => {
  let now = 1_000_000;
  const a = new RecentActivity(() => now);
  a.paused('mx.slow.test', now + 600_000, '421 4.7.0 [TSS04] slow down');
  a.paused('mx.slow.test', now + 300_000, '421 again');
  expect(a.pausedNow()).toEqual([{ provider: 'mx.slow.test', until: 1_600_000, reply: '421 again', since: 1_000_000 }]);
  now += 600_000;
  expect(a.pausedNow()).toEqual([]);
});
