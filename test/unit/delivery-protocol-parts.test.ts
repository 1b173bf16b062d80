// The pieces of issue 17's delivery rules that need no network: the order of MX hosts of
// equal preference (random source injected) and the Received field's text.
import { Destination, orderForAttempt, routeDomain } from '../../src/delivery/route';
import { Resolver } from '../../src/dns/resolver';
import { needsSmtpUtf8 } from '../../src/delivery/transport';
import { receivedField, sanitizeHeloName } from '../../src/submission/received-field';

const d = (host: string, ip: string, priority?: number): Destination => ({ host, ip, port: 25, priority });

describe('orderForAttempt', () => {
  const route = [d('a', '1', 10), d('a', '1b', 10), d('b', '2', 10), d('c', '3', 20), d('e', '5', 20), d('f', '6', 30)];

  test('hosts of equal preference are shuffled, preferences stay in order, a host keeps its addresses together', () => {
    // random() -> 0: Fisher-Yates swaps each position with the first
    const order = orderForAttempt(route, () => 0).map((x) => x.ip);
    expect(order).toEqual(['2', '1', '1b', '5', '3', '6']);
    // random() -> just under 1: nothing moves
    expect(orderForAttempt(route, () => 0.999).map((x) => x.ip)).toEqual(['1', '1b', '2', '3', '5', '6']);
  });

  test('each of two equal hosts comes first about half the time', () => {
    const pair = [d('mx1', '1', 10), d('mx2', '2', 10)];
    let first = 0;
    for (let i = 0; i < 2000; i++) if (orderForAttempt(pair)[0].host === 'mx1') first++;
    expect(first).toBeGreaterThan(800);
    expect(first).toBeLessThan(1200);
  });

  test('a smarthost or an implicit MX (no preference) is left alone', () => {
    const hosts = [d('x', '1'), d('y', '2')];
    expect(orderForAttempt(hosts, () => 0)).toEqual(hosts);
  });
});

describe('Received field', () => {
  const date = new Date(Date.UTC(2026, 11, 3, 11, 0, 0));
  test('all parts', () => {
    expect(receivedField(
      { heloName: 'client.example', clientAddress: '::ffff:192.0.2.7', protocol: 'ESMTPSA', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, hideClient: false },
      'relay.example.net', { id: 'ABC123', recipients: ['user@dest.test'], date },
    )).toMatch(/^Received: from client\.example \(\[192\.0\.2\.7\]\)\r\n\tby relay\.example\.net \(dkim-relay\) with ESMTPSA \(TLSv1\.3 TLS_AES_256_GCM_SHA384\)\r\n\tid ABC123 for <user@dest\.test>;\r\n\tThu, 03 Dec 2026 \d\d:\d\d:00 [+-]\d{4}\r\n$/);
  });

  test('IPv6 client, no id, several recipients, hidden client', () => {
    const info = { heloName: 'h', clientAddress: '2001:db8::1', protocol: 'ESMTP', hideClient: false };
    expect(receivedField(info, 'r.test', { recipients: ['a@x.test', 'b@x.test'], date })).toMatch(/^Received: from h \(\[IPv6:2001:db8::1\]\)\r\n\tby r\.test \(dkim-relay\) with ESMTP;\r\n\tThu, /);
    expect(receivedField({ ...info, hideClient: true }, 'r.test', { recipients: ['a@x.test'], date })).toMatch(/^Received: by r\.test \(dkim-relay\) with ESMTP\r\n\tfor <a@x\.test>;\r\n\t/);
  });

  test('client-controlled text cannot break the field', () => {
    expect(sanitizeHeloName('a\r\nX-Injected: 1')).toBe('a??X-Injected:?1');
    expect(sanitizeHeloName('')).toBe('unknown');
    expect(sanitizeHeloName('x'.repeat(500))).toHaveLength(103);
    const field = receivedField({ heloName: 'a\r\nB: c', clientAddress: '192.0.2.1', protocol: 'ESMTP\r\nX: y', hideClient: false }, 'r.test', { recipients: ['a>\r\nX: y@x.test'], date });
    expect(field.split('\r\n').slice(1, -1).every((line) => line.startsWith('\t'))).toBe(true);
    expect(field).toContain('with SMTP;');
  });
});

test('needsSmtpUtf8: any non-ASCII character in an address', () => {
  expect(needsSmtpUtf8('user@example.org')).toBe(false);
  expect(needsSmtpUtf8('jürgen@example.org')).toBe(true);
  expect(needsSmtpUtf8('user@bücher.test')).toBe(true);
});

test('routeDomain asks for an internationalized domain by its A-labels, whatever the resolver does with U-labels', async () => {
  // Node's own resolver converts U-labels too; this pins the relay's conversion for any resolver.
  const asked: string[] = [];
  const resolver = {
    mx: async (name: string) => {
      asked.push(name);
      return [{ exchange: 'mx.xn--bcher-kva.test', priority: 10 }];
    },
    addresses: async () => [{ address: '192.0.2.1', ttl: 60 }],
  } as unknown as Resolver;
  const route = await routeDomain('Bücher.test', { resolver, mxPort: 25, smarthost: '', families: [4] });
  expect(asked).toEqual(['xn--bcher-kva.test']);
  expect(route).toMatchObject({ kind: 'hosts', destinations: [{ host: 'mx.xn--bcher-kva.test', ip: '192.0.2.1', priority: 10 }] });
});

test('addressPreference any: each host puts IPv6 first at random, keeping its addresses together', () => {
  const route: Destination[] = [
    { host: 'mx1', ip: '192.0.2.1', port: 25, priority: 10 }, { host: 'mx1', ip: '2001:db8::1', port: 25, priority: 10 },
    { host: 'mx2', ip: '192.0.2.2', port: 25, priority: 20 }, { host: 'mx2', ip: '2001:db8::2', port: 25, priority: 20 },
  ];
  expect(orderForAttempt(route, () => 0.9, true).map((d) => d.ip)).toEqual(['192.0.2.1', '2001:db8::1', '192.0.2.2', '2001:db8::2']);
  expect(orderForAttempt(route, () => 0.1, true).map((d) => d.ip)).toEqual(['2001:db8::1', '192.0.2.1', '2001:db8::2', '192.0.2.2']);
  expect(orderForAttempt(route, () => 0.1).map((d) => d.ip)).toEqual(['192.0.2.1', '2001:db8::1', '192.0.2.2', '2001:db8::2']);
});

test('routeDomain: the preferred family first within a host, only configured families', async () => {
  const resolver = {
    mx: async () => [{ exchange: 'mx.both.test', priority: 10 }],
    addresses: async (_name: string, family: 4 | 6) => [{ address: family === 4 ? '192.0.2.1' : '2001:db8::1', ttl: 60 }],
  } as unknown as Resolver;
  const ips = async (opts: object) => {
    const r = await routeDomain('both.test', { resolver, mxPort: 25, smarthost: '', ...opts });
    return r.kind === 'hosts' ? r.destinations.map((d) => d.ip) : r.reason;
  };
  expect(await ips({ families: [4, 6] })).toEqual(['192.0.2.1', '2001:db8::1']);
  expect(await ips({ families: [4, 6], preference: 'ipv6' })).toEqual(['2001:db8::1', '192.0.2.1']);
  expect(await ips({ families: [4], preference: 'ipv6' })).toEqual(['192.0.2.1']);
  expect(await ips({ families: [6] })).toEqual(['2001:db8::1']);
});
