// A message rate on one node without Redis (GCRA in memory): a destinationLimits rule with
// "rate": "4/s" spaces the messages to that MX 250 ms apart, messages over the rate wait for
// their turn without an attempt, and other destinations are not held up by it.
import { logLines, rawMessage, startWithSink, submit, Harness } from '../helpers/relay-harness';
import { Sink, startSink } from '../helpers/sink';

let h: Harness;
let sink: Sink;
let other: Sink;
const arrivals = new Map<string, number>();

beforeAll(async () => {
  const note = (msg: { data: Buffer }) => {
    arrivals.set(/^Subject: (.*)$/m.exec(msg.data.toString('latin1'))![1].trim(), Date.now());
    return undefined;
  };
  ({ h, sink } = await startWithSink({
    RELAY_DESTINATION_LIMITS: JSON.stringify([{ match: 'mx.dest.test', rate: '4/s' }]),
  }, { tls: false, onData: note }));
  other = await startSink({ host: '127.0.0.4', port: sink.port, tls: false, onData: note });
  h.dns.set('other.test', 'MX', [{ exchange: 'mx.other.test', priority: 10 }]);
  h.dns.set('mx.other.test', 'A', ['127.0.0.4']);
});

afterAll(async () => {
  await h?.stop();
  await Promise.all([sink?.close(), other?.close()]);
});

test('4/s: 8 messages arrive over more than 1.5 s, at most 4 in any second, without deferrals; another MX is not held up', async () => {
  const subjects = Array.from({ length: 8 }, (_, i) => `rated ${i}`);
  await Promise.all(subjects.map((subject, i) => submit(h, { to: [`u${i}@dest.test`], raw: rawMessage('app@example.org', `u${i}@dest.test`, { subject }) })));
  const submittedAt = Date.now();
  await submit(h, { to: ['x@other.test'], raw: rawMessage('app@example.org', 'x@other.test', { subject: 'unrated' }) });
  await sink.waitForMessages(8, 30_000);
  await other.waitForMessages(1, 10_000);
  const times = subjects.map((s) => arrivals.get(s)!).sort((a, b) => a - b);
  expect(times[7] - times[0]).toBeGreaterThanOrEqual(1500); // 7 intervals of 250 ms = 1.75 s
  for (const t of times) expect(times.filter((x) => x >= t && x < t + 1000).length).toBeLessThanOrEqual(5);
  expect(arrivals.get('unrated')! - submittedAt).toBeLessThan(1500);
  expect(logLines(h).filter((l) => l.msg === 'delivery attempt' && l.outcome !== 'delivered')).toEqual([]);
}, 60_000);
