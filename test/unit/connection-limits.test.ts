// ConnectionLimits (src/submission/connection-limits.ts): the counting behind the per-client
// limit and the share kept for trusted networks; over real SMTP in test/security/flood-connections.test.ts.
import { NetworkList } from '../../src/policy/client-access';
import { clientKey } from '../../src/policy/client-access';
import { ConnectionLimits } from '../../src/submission/connection-limits';

const warnings: string[] = [];
const log = { warn: (_: unknown, message: string) => warnings.push(message) } as never;

function limits(maxPerClient = 2, maxClients = 6, reservedForTrusted = 2) {
  return new ConnectionLimits({ maxPerClient, maxClients, reservedForTrusted, trusted: new NetworkList(['10.0.0.0/8']), log });
}

let id = 0;
const session = (remoteAddress: string) => ({ id: String(++id), remoteAddress });

test('an IPv4 client counts by its address, an IPv6 client by its /64, a mapped IPv4 as IPv4', () => {
  expect(clientKey('192.0.2.7')).toBe('192.0.2.7');
  expect(clientKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
  expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
  expect(clientKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
  expect(clientKey('2001:0db8:0001:0002:ffff::1')).toBe('2001:db8:1:2::/64');
  expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
  expect(clientKey('::1')).toBe('0:0:0:0::/64');
  expect(clientKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
});

test('per client: the limit refuses with 421 4.7.0, a closed connection makes room, other clients are not affected', () => {
  const l = limits(2, 20, 2);
  const a1 = session('192.0.2.1');
  expect(l.admit(a1)).toBeNull();
  expect(l.admit(session('192.0.2.1'))).toBeNull();
  const refused = l.admit(session('192.0.2.1'));
  expect(refused?.responseCode).toBe(421);
  expect(refused?.message).toMatch(/^4\.7\.0 too many connections from 192\.0\.2\.1: 2 are open/);
  expect(l.admit(session('192.0.2.2'))).toBeNull();
  // two IPv6 addresses of one /64 are one client
  expect(l.admit(session('2001:db8::1'))).toBeNull();
  expect(l.admit(session('2001:db8::2'))).toBeNull();
  expect(l.admit(session('2001:db8::3'))?.responseCode).toBe(421);
  l.release(a1);
  l.release(a1); // a second close of one session changes nothing
  expect(l.openBy('192.0.2.1')).toBe(1);
  expect(l.admit(session('192.0.2.1'))).toBeNull();
  // a refused session was never counted: its close changes nothing
  l.release({ id: 'never admitted' });
  expect(l.openBy('192.0.2.1')).toBe(2);
});

test('clients outside the trusted networks share maxClients minus the reserve; trusted clients are not counted there', () => {
  const l = limits(10, 6, 2);
  const outside = Array.from({ length: 4 }, (_, i) => session(`192.0.2.${i + 1}`));
  for (const s of outside) expect(l.admit(s)).toBeNull();
  const busy = l.admit(session('192.0.2.99'));
  expect(busy?.message).toMatch(/^4\.7\.0 the relay is busy: clients outside its trusted networks hold all 4 connections/);
  for (let i = 0; i < 20; i++) expect(l.admit(session('10.1.2.3'))).toBeNull(); // smtp-server's maxClients caps these
  l.release(outside[0]);
  expect(l.admit(session('192.0.2.99'))).toBeNull();
});

test('0 turns the limits off', () => {
  const l = limits(0, 0, 20);
  for (let i = 0; i < 50; i++) expect(l.admit(session('192.0.2.1'))).toBeNull();
});

test('a client that reaches its limit is logged once, not once per refused connection', () => {
  warnings.length = 0;
  const l = limits(1, 100, 0);
  const first = session('198.51.100.1');
  l.admit(first);
  for (let i = 0; i < 5; i++) l.admit(session('198.51.100.1'));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(/198\.51\.100\.1 holds submission\.maxConnectionsPerClient \(1\)/);
  l.release(first);
  l.admit(session('198.51.100.1'));
  l.admit(session('198.51.100.1'));
  expect(warnings).toHaveLength(2);
});
