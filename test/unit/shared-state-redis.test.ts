// The Redis side of shared state against a real redis-server, with two "nodes" (two
// SharedRedis connections under different names) in one process: the connection semaphore
// holds across both, a crashed node's leases expire by themselves, a pause set by one is
// seen by the other within a heartbeat, failed logins count across both, and with Redis
// gone each node works on its share and logs the fallback once and the return once.
import Redis from 'ioredis';
import pino from 'pino';
import { Writable } from 'node:stream';
import { Lease } from '../../src/delivery/destination-limits';
import { RedisAuthCounters } from '../../src/shared-state/redis-auth-counters';
import { RedisDestinationState } from '../../src/shared-state/redis-destination-state';
import { HEARTBEAT_MS, SharedRedis } from '../../src/shared-state/shared-redis';
import { startRedis, TestRedis } from '../helpers/redis-server';

let redis: TestRedis;
const lines: Record<string, unknown>[] = [];
const log = pino({ level: 'debug' }, new Writable({ write(chunk, _e, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } }));
const opened: SharedRedis[] = [];

async function node(name: string, leaseTtlMs = 15_000): Promise<{ shared: SharedRedis; state: RedisDestinationState; auth: RedisAuthCounters }> {
  const shared = new SharedRedis({ url: redis.url, nodeName: name, log: log.child({ node: name }) });
  opened.push(shared);
  const state = new RedisDestinationState(shared, log.child({ node: name }), { leaseTtlMs, renewMs: 100 });
  const auth = new RedisAuthCounters(shared);
  await shared.start();
  return { shared, state, auth };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  // each test starts on an empty Redis (a "crashed" node stays in the heartbeat set for a while)
  const c = new Redis(redis.url);
  await c.flushall();
  c.disconnect();
});
afterAll(async () => {
  await redis?.stop();
});

test('a limit of 3 connections holds over two nodes; a released slot can be taken by the other node', async () => {
  const a = await node('a');
  const b = await node('b');
  const leases = (await Promise.all([a, b, a, b, a].map((n) => n.state.acquire('rule:mx.test', 3)))).filter((l): l is Lease => !!l);
  expect(leases).toHaveLength(3);
  expect(await b.state.acquire('rule:mx.test', 3)).toBeNull();
  leases[0].release();
  await sleep(50); // the release is sent without waiting for it
  const again = await b.state.acquire('rule:mx.test', 3);
  expect(again).not.toBeNull();
  // other keys are counted apart
  expect(await a.state.acquire('rule:other.test', 1)).not.toBeNull();
});

test('a crashed node\'s leases expire by themselves; a living node\'s are renewed', async () => {
  const crashed = await node('crashed', 600);
  const living = await node('living', 600);
  expect(await crashed.state.acquire('host:mx.crash.test', 2)).not.toBeNull();
  expect(await living.state.acquire('host:mx.crash.test', 2)).not.toBeNull();
  crashed.shared.client.disconnect(); // no release, no renewal: as if the process died
  expect(await living.state.acquire('host:mx.crash.test', 2)).toBeNull();
  await sleep(1500); // past the TTL: the living node's lease was renewed, the crashed one's not
  expect(await living.state.acquire('host:mx.crash.test', 2)).not.toBeNull();
  expect(await living.state.acquire('host:mx.crash.test', 2)).toBeNull();
});

test('a pause set on one node is seen by the other within a heartbeat, and by a node that starts later', async () => {
  const a = await node('a');
  const b = await node('b');
  const until = Date.now() + 60_000;
  expect(a.state.pause('rule:*.slow.test', until)).toBe(true);
  await sleep(HEARTBEAT_MS * 2 + 100);
  expect(b.state.pausedUntil('rule:*.slow.test')).toBe(until);
  const late = await node('late');
  expect(late.state.pausedUntil('rule:*.slow.test')).toBe(until);
  expect(lines.some((l) => l.node === 'b' && /paused by another node/.test(String(l.msg)))).toBe(true);
});

test('failed logins count across nodes: capacity 4, two failures on each node block the address on both', async () => {
  const a = await node('a');
  const b = await node('b');
  const rule = { capacity: 4, blockMs: 60_000 };
  const now = Date.now();
  for (const n of [a, b, a]) {
    expect(await n.auth.reserve('address:192.0.2.7', rule, now)).toBe(true);
    expect((await n.auth.settle('address:192.0.2.7', rule, true, now)).blockStarted).toBe(false);
  }
  expect(await b.auth.reserve('address:192.0.2.7', rule, now)).toBe(true);
  // in flight on b: a may not take one more place meanwhile
  expect(await a.auth.reserve('address:192.0.2.7', rule, now)).toBe(false);
  const fourth = await b.auth.settle('address:192.0.2.7', rule, true, now);
  expect(fourth).toEqual({ failures: expect.closeTo(4, 1), blockStarted: true });
  expect(await a.auth.blockedUntil('address:192.0.2.7', Date.now())).toBeGreaterThan(Date.now() + 50_000);
  expect(await a.auth.reserve('address:192.0.2.7', rule, Date.now())).toBe(false);
  // a successful login is remembered for every node
  await a.auth.rememberLogin('user:dave', 'address:198.51.100.7', Date.now());
  expect(await b.auth.loggedInFrom('user:dave', 'address:198.51.100.7', 60_000, Date.now())).toBe(true);
  expect(await b.auth.loggedInFrom('user:dave', 'address:198.51.100.8', 60_000, Date.now())).toBe(false);
});

test('Redis gone: each node takes its share of a limit (4 over 2 nodes: 2 each), logs the fallback once; Redis back: logged once, shared again (leases and the pauses of the outage too)', async () => {
  const a = await node('a');
  const b = await node('b');
  await sleep(HEARTBEAT_MS * 2 + 100); // both heartbeats seen: 2 nodes alive
  expect(a.shared.nodes).toBe(2);
  const before = lines.length;
  await redis.kill();
  const start = Date.now();
  const got = await Promise.all([1, 2, 3].map(() => a.state.acquire('rule:share.test', 4)));
  expect(Date.now() - start).toBeLessThan(1000); // no waiting on a dead Redis
  expect(got.filter(Boolean)).toHaveLength(2);
  expect(await a.state.takeRate('rule:share.test', { count: 10, periodMs: 1000, burst: 1 })).toBe(0);
  // a throttling reply while Redis is away pauses this node at once, the others once it is back
  const pausedUntil = Date.now() + 60_000;
  a.state.pause('rule:paused-in-outage.test', pausedUntil);
  expect(a.state.pausedUntil('rule:paused-in-outage.test')).toBe(pausedUntil);
  await sleep(HEARTBEAT_MS * 3);
  const fellBack = lines.slice(before).filter((l) => l.node === 'a' && /Redis unusable/.test(String(l.msg)));
  expect(fellBack).toHaveLength(1);
  await redis.start();
  const deadline = Date.now() + 5000;
  while (!(a.shared.up && b.shared.up) && Date.now() < deadline) await sleep(100);
  expect(a.shared.up).toBe(true);
  expect(lines.slice(before).filter((l) => l.node === 'a' && /Redis is back/.test(String(l.msg)))).toHaveLength(1);
  // the leases taken during the outage are put back into Redis at the next renewal, and the
  // pause reaches the other node
  await sleep(HEARTBEAT_MS * 2 + 100);
  expect(b.state.pausedUntil('rule:paused-in-outage.test')).toBe(pausedUntil);
  expect(await b.state.acquire('rule:share.test', 4)).not.toBeNull();
  expect(await b.state.acquire('rule:share.test', 4)).not.toBeNull();
  expect(await b.state.acquire('rule:share.test', 4)).toBeNull();
});
