// Three relay nodes sharing one Redis, as users run several nodes: each its own submission
// port, source address (127.0.0.21-23), HELO name and spool, one real redis-server (on a unix
// socket) and sink MXs that see every node's connections. What the receivers count across all
// of a sender's IPs must hold across the nodes: the connection limit, the message rate, the
// pause after a throttling reply; login guessing spread over the nodes (in a row or all at
// once) gets no more password checks than on one.
// Redis killed in the middle of a burst loses nothing; once it is back, sharing resumes.
import { Harness, logLines, rawMessage, startHarness, submit, waitForLog } from '../helpers/relay-harness';
import { login } from '../helpers/login';
import { startRedis, TestRedis } from '../helpers/redis-server';
import { Sink, startSink } from '../helpers/sink';

const NODES = [
  { ip: '127.0.0.21', helo: 'node1.relay.test' },
  { ip: '127.0.0.22', helo: 'node2.relay.test' },
  { ip: '127.0.0.23', helo: 'node3.relay.test' },
];
const LIMITS = [
  { match: 'mx.limit.test', connections: 2, messagesPerConnection: 3 },
  { match: 'mx.rate.test', rate: '2/s' },
  { match: 'mx.throttle.test', throttlePause: '4s' },
  { match: 'mx.outage.test', connections: 2, messagesPerConnection: 2 },
  { match: 'mx.after.test', connections: 2, messagesPerConnection: 3 },
];

let redis: TestRedis;
let nodes: Harness[] = [];
/** Each destination its own sink, so each counts only its own connections. */
const sinks: Record<string, Sink> = {};
/** Arrival times at the sinks, by subject. */
const arrivals = new Map<string, number>();

beforeAll(async () => {
  redis = await startRedis();
  const first = await startSink({ host: '127.0.0.3', tls: false, dataDelayMs: 300, onData: noteArrival });
  sinks.limit = first;
  sinks.rate = await startSink({ host: '127.0.0.4', port: first.port, tls: false, onData: noteArrival });
  sinks.throttle = await startSink({
    host: '127.0.0.5', port: first.port, tls: false,
    onData: (msg, attempt) => {
      if (subjectOf(msg.data) === 'throttle 1' && attempt === 1) return { code: 421, message: '4.7.0 [TS01] Messages from this IP temporarily deferred due to unexpected volume' };
      return noteArrival(msg);
    },
  });
  sinks.outage = await startSink({ host: '127.0.0.6', port: first.port, tls: false, dataDelayMs: 200, onData: noteArrival });
  sinks.after = await startSink({ host: '127.0.0.7', port: first.port, tls: false, dataDelayMs: 300, onData: noteArrival });
  nodes = await Promise.all(NODES.map((n) => startHarness({
    RELAY_LOCAL_ADDRESS: n.ip,
    RELAY_HELO_NAME: n.helo,
    RELAY_REDIS_URL: redis.url,
    RELAY_MX_PORT: String(first.port),
    RELAY_DESTINATION_LIMITS: JSON.stringify(LIMITS),
    RELAY_TRUSTED_NETWORKS: '127.0.0.1/32', // other loopback addresses stand for remote clients
    RELAY_AUTH_MAX_FAILURES: '4',
    RELAY_AUTH_BLOCK_TIME: '1h',
    RELAY_AUTH_FAILURE_DELAY: '0',
  })));
  for (const h of nodes) {
    for (const [name, sink] of Object.entries(sinks)) {
      h.dns.set(`${name}.test`, 'MX', [{ exchange: `mx.${name}.test`, priority: 10 }]);
      h.dns.set(`mx.${name}.test`, 'A', [sink.host]);
    }
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(nodes.map((h) => h.stop()));
  await Promise.all(Object.values(sinks).map((s) => s.close()));
  await redis?.stop();
});

function subjectOf(data: Buffer): string {
  return /^Subject: (.*)$/m.exec(data.toString('latin1'))?.[1].trim() ?? '';
}

function noteArrival(msg: { data: Buffer }): undefined {
  arrivals.set(subjectOf(msg.data), Date.now());
  return undefined;
}

/** Submits `n` messages to `domain`, spread over the three nodes, all at once. */
async function burst(domain: string, prefix: string, n: number): Promise<string[]> {
  const subjects = Array.from({ length: n }, (_, i) => `${prefix} ${i}`);
  await Promise.all(subjects.map((subject, i) => submit(nodes[i % 3], {
    to: [`u${i}@${domain}`], raw: rawMessage('app@example.org', `u${i}@${domain}`, { subject }),
  })));
  return subjects;
}

test('every log line carries the node name (the HELO name by default)', async () => {
  for (const [i, h] of nodes.entries()) {
    const lines = logLines(h);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((l) => l.node !== NODES[i].helo)).toEqual([]);
  }
  expect(nodes[0].relay.nodeName).toBe('node1.relay.test');
});

test('a limit of 2 connections to one MX holds over the three nodes during a burst of 30', async () => {
  const subjects = await burst('limit.test', 'limit', 30);
  await sinks.limit.waitForMessages(30, 60_000);
  expect(sinks.limit.openConnections().max).toBeLessThanOrEqual(2);
  // all three nodes delivered (it was shared, not one node doing everything)
  expect(new Set(sinks.limit.messages.map((m) => m.remoteAddress))).toEqual(new Set(NODES.map((n) => n.ip)));
  expect(subjects.every((s) => arrivals.has(s))).toBe(true);
}, 90_000);

test('a throttling 421 seen by one node pauses the destination on all three', async () => {
  await submit(nodes[0], { to: ['t1@throttle.test'], raw: rawMessage('app@example.org', 't1@throttle.test', { subject: 'throttle 1' }) });
  const paused = await waitForLog(nodes[0], (l) => String(l.msg).includes('throttles us'), 15_000);
  const pausedAt = Number(paused.time);
  // the other nodes hear of it within a second
  await waitForLog(nodes[1], (l) => /paused by another node/.test(String(l.msg)), 1500);
  await waitForLog(nodes[2], (l) => /paused by another node/.test(String(l.msg)), 1500);
  await submit(nodes[1], { to: ['t2@throttle.test'], raw: rawMessage('app@example.org', 't2@throttle.test', { subject: 'throttle 2' }) });
  await submit(nodes[2], { to: ['t3@throttle.test'], raw: rawMessage('app@example.org', 't3@throttle.test', { subject: 'throttle 3' }) });
  await sinks.throttle.waitForMessages(3, 30_000);
  for (const s of ['throttle 2', 'throttle 3']) expect(arrivals.get(s)!).toBeGreaterThanOrEqual(pausedAt + 3500);
  // nodes 2 and 3 waited without an attempt: no deferral logged there
  for (const h of nodes.slice(1)) {
    expect(logLines(h).filter((l) => l.msg === 'delivery attempt' && l.domain === 'throttle.test' && l.outcome !== 'delivered')).toEqual([]);
  }
}, 60_000);

test('a message rate of 2/s holds over the three nodes: 12 messages take more than 5 s, never 4 in a second', async () => {
  const subjects = await burst('rate.test', 'rate', 12);
  await sinks.rate.waitForMessages(12, 60_000);
  const times = subjects.map((s) => arrivals.get(s)!).sort((a, b) => a - b);
  // evenly spread at 500 ms: 5.5 s from first to last (one node alone at 2/s: 1.5 s for its 4)
  expect(times[11] - times[0]).toBeGreaterThanOrEqual(4500);
  for (const t of times) expect(times.filter((x) => x >= t && x < t + 1000).length).toBeLessThanOrEqual(3);
  // waiting for the rate used no attempts
  for (const h of nodes) {
    expect(logLines(h).filter((l) => l.msg === 'delivery attempt' && l.domain === 'rate.test' && l.outcome !== 'delivered')).toEqual([]);
  }
}, 90_000);

test('failed logins count across nodes: 2 + 2 guesses on two nodes block the address on the third', async () => {
  const client = '127.0.0.30';
  const replies: string[] = [];
  for (const h of [nodes[0], nodes[0], nodes[1], nodes[1]]) replies.push((await login(h.relay.ports.starttls, client, 'mallory', 'guess')).reply);
  expect(replies.slice(0, 3).every((r) => /^535 5\.7\.8 /.test(r))).toBe(true);
  expect(replies[3]).toMatch(/^421 4\.7\.0 too many failed logins from 127\.0\.0\.30/);
  // the third node never saw a guess from it, and refuses it all the same
  const third = await login(nodes[2].relay.ports.starttls, client, 'mallory', 'guess');
  expect(third.reply).toMatch(/^421 4\.7\.0 too many failed logins from 127\.0\.0\.30/);
}, 60_000);

test('12 guesses at once, 4 on each node, get no more password checks than on one node: 4', async () => {
  const client = '127.0.0.31';
  const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => login(nodes[i % 3].relay.ports.starttls, client, `user${i}`, 'guess')));
  const checked = nodes.flatMap((h) => logLines(h).filter((l) => l.msg === 'authentication failed' && l.client === client));
  expect(checked.length).toBeLessThanOrEqual(4);
  expect(replies.filter((r) => /^535 /.test(r.reply)).length).toBeLessThanOrEqual(3);
  expect(replies.filter((r) => /^421 4\.7\.0 /.test(r.reply)).length).toBeGreaterThanOrEqual(8);
}, 60_000);

test('Redis killed in the middle of a burst: nothing is lost, delivery goes on (each node on its share); Redis back: sharing resumes', async () => {
  const sent = burst('outage.test', 'outage', 24);
  await sinks.outage.waitForMessages(4, 30_000);
  const killedAt = Date.now();
  await redis.kill();
  await sent;
  await sinks.outage.waitForMessages(24, 90_000);
  for (const h of nodes) {
    expect(logLines(h).filter((l) => Number(l.time) >= killedAt && /Redis unusable/.test(String(l.msg)))).toHaveLength(1);
  }
  // on its own, each node takes its share of the limit of 2 over 3 nodes: 1, and keeps the
  // connections it held through Redis when it went away. So at the switch one node may hold the
  // 2 the shared limit allowed while the two others open 1 each: at most 4 (a node on the whole
  // limit, as without the share, would reach 6). A CI run saw that 4 once.
  expect(sinks.outage.openConnections().max).toBeLessThanOrEqual(4);
  await redis.start();
  for (const h of nodes) await waitForLog(h, (l) => Number(l.time) >= killedAt && /Redis is back/.test(String(l.msg)), 15_000);
  for (const h of nodes) expect(logLines(h).filter((l) => Number(l.time) >= killedAt && /Redis is back/.test(String(l.msg)))).toHaveLength(1);
  // shared again: a new burst to another limited MX stays within its 2 connections
  await burst('after.test', 'after', 15);
  await sinks.after.waitForMessages(15, 60_000);
  expect(sinks.after.openConnections().max).toBeLessThanOrEqual(2);
  expect(new Set(sinks.after.messages.map((m) => m.remoteAddress)).size).toBeGreaterThan(1);
  // every message done, on every node (the spool entry goes a moment after the sink's 250)
  const deadline = Date.now() + 15_000;
  while (nodes.some((h) => h.relay.queue.size) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(await Promise.all(nodes.map(async (h) => ((await h.relay.queue.allEnvelopes(10_000)) ?? []).map((e) => e.recipients)))).toEqual([[], [], []]);
}, 180_000);
