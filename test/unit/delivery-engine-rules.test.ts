// The pure rules of the delivery engine: the retry schedule, what counts as throttling, and
// which destination limit applies to which MX hosts.
import { parseDestinationLimits } from '../../src/config/schema';
import { isThrottling } from '../../src/replies/outcome';
import { enhancedStatus } from '../../src/replies/verdict';
import { effectiveRules, limitFor } from '../../src/delivery/destination-limits';
import { RetrySchedule } from '../../src/delivery/retry-schedule';
import { statusOf } from '../../src/bounce/dsn';

const DEFAULTS = { connections: 10, messagesPerConnection: 100, throttlePause: 600 };

test('the schedule steps through its list, the last step repeats, jitter stretches by at most 10%', () => {
  const none = new RetrySchedule('5m,10m,1h', 5 * 86400 * 1000, () => 0);
  expect([1, 2, 3, 4, 30].map((n) => none.delayAfter(n) / 1000)).toEqual([300, 600, 3600, 3600, 3600]);
  const most = new RetrySchedule('5m,10m,1h', 5 * 86400 * 1000, () => 0.999999);
  expect(most.delayAfter(1) / 1000).toBeCloseTo(330, 0);
});

test('the last attempt is moved to the expiry, and after it the recipient has expired', () => {
  const s = new RetrySchedule('1h', 2 * 3600 * 1000, () => 0);
  const accepted = 0;
  expect(s.nextAttempt(1, accepted, 3600_000 * 1.5)).toBe(2 * 3600_000);
  expect(s.expired(accepted, 2 * 3600_000 - 1)).toBe(false);
  expect(s.expired(accepted, 2 * 3600_000)).toBe(true);
});

test('a bad schedule is refused with an example', () => {
  expect(() => new RetrySchedule('5m,soon', 1000)).toThrow(/"soon" is not a duration .*5m,10m,30m,1h/);
});

test.each([
  ['421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred', true],
  ['451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation', true],
  ['421 gmx.net (mxgmx001) Nemesis ESMTP Service not available. Reject due to policy restrictions', true],
  ['450 4.7.1 Reject due to policy restrictions', true],
  ['421 4.3.2 Service shutting down', true],
  ['451 4.3.0 greylisted, try again later', false],
  ['550 5.7.1 Reject due to policy restrictions', false],
  ['connect ECONNREFUSED 127.0.0.5:25', false],
])('throttling: %s -> %s', (reply, expected) => {
  expect(isThrottling(reply)).toBe(expected);
});

test('limits by MX host: presets, configured rules first, defaults per host', () => {
  const rules = effectiveRules(parseDestinationLimits([{ match: '*.web.de', connections: 2, throttlePause: '30m' }]));
  expect(limitFor(['contoso-com.mail.protection.outlook.com'], rules, DEFAULTS)).toMatchObject({ key: 'rule:*.protection.outlook.com', connections: 5, messagesPerConnection: 50 });
  expect(limitFor(['mx00.emig.gmx.net', 'mx01.emig.gmx.net'], rules, DEFAULTS)).toMatchObject({ connections: 4, messagesPerConnection: 20 });
  expect(limitFor(['mx-ha03.web.de'], rules, DEFAULTS)).toMatchObject({ connections: 2, messagesPerConnection: 100, throttlePauseMs: 1_800_000 });
  expect(limitFor(['gmail-smtp-in.l.google.com'], rules, DEFAULTS).rule).toBe('*.google.com');
  expect(limitFor(['mta5.am0.yahoodns.net'], rules, DEFAULTS).rule).toBe('*.yahoodns.net');
  expect(limitFor(['mx00.t-online.de'], rules, DEFAULTS).rule).toBe('*.t-online.de');
  expect(limitFor(['mx.example.com'], rules, DEFAULTS)).toMatchObject({ key: 'host:mx.example.com', rule: 'default', connections: 10 });
});

test('destination limit rules are checked field by field', () => {
  expect(() => parseDestinationLimits([{ connections: 2 }])).toThrow(/needs "match"/);
  expect(() => parseDestinationLimits([{ match: 'x.test', connections: 0 }])).toThrow(/connections must be a whole number >= 1/);
  expect(() => parseDestinationLimits([{ match: 'x.test', conections: 2 }])).toThrow(/unknown field "conections"/);
});

test('DSN status: from the reply, else what the failure means', () => {
  expect(enhancedStatus('550 5.1.1 no such user')).toBe('5.1.1');
  expect(statusOf({ address: 'a@x', action: 'failed', reply: '550 5.1.1 no such user' })).toBe('5.1.1');
  expect(statusOf({ address: 'a@x', action: 'failed', reply: 'domain x accepts no mail (null MX, RFC 7505)' })).toBe('5.1.10');
  expect(statusOf({ address: 'a@x', action: 'failed', reply: 'gave up after 9 attempts in 5 d: connect ECONNREFUSED', expired: true })).toBe('4.4.7');
  expect(statusOf({ address: 'a@x', action: 'delayed', reply: '451 4.3.0 greylisted' })).toBe('4.3.0');
});
