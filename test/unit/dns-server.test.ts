// The test DNS server answers Node's own resolver (c-ares) over real UDP and TCP.
import { promises as dnsPromises } from 'node:dns';
import { reverseName, startDnsServer, TestDnsServer } from '../helpers/dns-server';

// An RSA-4096 DKIM record is ~750 bytes: more than one character-string and more than 512 bytes
const LONG_P = 'MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA' + 'x'.repeat(690) + 'QIDAQAB';
const LONG_TXT = `v=DKIM1; k=rsa; p=${LONG_P}`;

function resolverFor(server: TestDnsServer, options: { tries?: number } = {}): dnsPromises.Resolver {
  const r = new dnsPromises.Resolver({ timeout: 2000, tries: options.tries ?? 1 });
  r.setServers([server.address]);
  return r;
}

describe('test DNS server', () => {
  let dns: TestDnsServer;
  let resolver: dnsPromises.Resolver;

  beforeAll(async () => {
    dns = await startDnsServer();
    resolver = resolverFor(dns);
  });
  afterAll(() => dns.close());
  beforeEach(() => {
    dns.clear();
    dns.queries.length = 0;
  });

  test('address is host:port on loopback', () => {
    expect(dns.host).toBe('127.0.0.1');
    expect(dns.port).toBeGreaterThan(0);
    expect(dns.address).toBe(`127.0.0.1:${dns.port}`);
  });

  test('A and AAAA, names case-insensitive with optional trailing dot', async () => {
    dns.set('Mx1.Example.ORG.', 'A', ['127.0.0.3', '127.0.0.4']);
    dns.set('mx1.example.org', 'AAAA', ['::1', '2001:db8::7']);
    expect((await resolver.resolve4('mx1.example.org')).sort()).toEqual(['127.0.0.3', '127.0.0.4']);
    expect(await resolver.resolve4('MX1.EXAMPLE.ORG')).toHaveLength(2);
    expect((await resolver.resolve6('mx1.example.org')).sort()).toEqual(['2001:db8::7', '::1']);
    expect(dns.queries.map((q) => q.type)).toEqual(['A', 'A', 'AAAA']);
    expect(dns.queries[0].name).toBe('mx1.example.org');
  });

  test('MX records keep their priorities, null MX is representable', async () => {
    dns.set('example.org', 'MX', [
      { exchange: 'mx2.example.org', priority: 20 },
      { exchange: 'mx1.example.org.', priority: 10 },
    ]);
    dns.add('example.org', 'MX', '30 mx3.example.org');
    // Node 24 adds type: 'MX' to each record; only exchange and priority matter here
    const mx = (await resolver.resolveMx('example.org'))
      .map(({ exchange, priority }) => ({ exchange, priority }))
      .sort((a, b) => a.priority - b.priority);
    expect(mx).toEqual([
      { exchange: 'mx1.example.org', priority: 10 },
      { exchange: 'mx2.example.org', priority: 20 },
      { exchange: 'mx3.example.org', priority: 30 },
    ]);

    dns.set('nullmx.example', 'MX', [{ exchange: '', priority: 0 }]);
    dns.set('nullmx2.example', 'MX', ['.']);
    expect(await resolver.resolveMx('nullmx.example')).toMatchObject([{ exchange: '', priority: 0 }]);
    expect(await resolver.resolveMx('nullmx2.example')).toMatchObject([{ exchange: '', priority: 0 }]);
  });

  test('a long TXT record is split into 255-byte strings and served in full (> 512 bytes)', async () => {
    expect(LONG_TXT.length).toBeGreaterThan(700);
    dns.set('s1._domainkey.example.org', 'TXT', [LONG_TXT]);
    const txt = await resolver.resolveTxt('s1._domainkey.example.org');
    expect(txt).toHaveLength(1);
    expect(txt[0].map((s) => s.length)).toEqual([255, 255, LONG_TXT.length - 510]);
    expect(txt[0].join('')).toBe(LONG_TXT);
    // (Node's c-ares sends no EDNS, so this answer always came over TCP after a TC=1 UDP reply)
    expect(dns.queries.map((q) => q.transport)).toContain('tcp');
  });

  test('TXT given as string[] is sent as exactly those character-strings', async () => {
    dns.set('example.org', 'TXT', [['v=spf1 ', '-all'], 'other']);
    const txt = await resolver.resolveTxt('example.org');
    expect(txt.sort((a, b) => a.length - b.length)).toEqual([['other'], ['v=spf1 ', '-all']]);
    expect(() => dns.set('x.example', 'TXT', [['y'.repeat(256)]])).toThrow(/255/);
  });

  test('oversized UDP answers are truncated and the resolver retries over TCP', async () => {
    // Bigger than any EDNS buffer c-ares advertises (1232), so TC=1 is certain
    const huge = 'v=DKIM1; p=' + 'A'.repeat(3000);
    dns.set('big.example.org', 'TXT', [huge]);
    const txt = await resolver.resolveTxt('big.example.org');
    expect(txt[0].join('')).toBe(huge);
    expect(dns.queries.map((q) => q.transport)).toEqual(['udp', 'tcp']);
  });

  test('maxUdpPayload forces TCP for the RSA-4096 record', async () => {
    const small = await startDnsServer({ maxUdpPayload: 512 });
    try {
      small.set('s1._domainkey.example.org', 'TXT', [LONG_TXT]);
      const txt = await resolverFor(small).resolveTxt('s1._domainkey.example.org');
      expect(txt[0].join('')).toBe(LONG_TXT);
      expect(small.queries.map((q) => q.transport)).toEqual(['udp', 'tcp']);
    } finally {
      await small.close();
    }
  });

  test('PTR', async () => {
    expect(reverseName('127.0.0.2')).toBe('2.0.0.127.in-addr.arpa');
    dns.set('2.0.0.127.in-addr.arpa', 'PTR', ['relay.test.example']);
    expect(await resolver.reverse('127.0.0.2')).toEqual(['relay.test.example']);
    dns.set(reverseName('::1'), 'PTR', ['localhost6.test.']);
    expect(await resolver.reverse('::1')).toEqual(['localhost6.test']);
  });

  test('unknown name is NXDOMAIN (ENOTFOUND), known name without the type is NODATA (ENODATA)', async () => {
    dns.set('example.org', 'A', ['127.0.0.9']);
    await expect(resolver.resolveMx('nothing.example.org')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(resolver.resolveMx('example.org')).rejects.toMatchObject({ code: 'ENODATA' });
    dns.set('empty.example.org', 'MX', []);
    await expect(resolver.resolveMx('empty.example.org')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  test('changes are visible immediately (nothing is cached), remove and clear', async () => {
    dns.set('example.org', 'A', ['127.0.0.9']);
    dns.set('example.org', 'TXT', ['hello']);
    expect(await resolver.resolve4('example.org')).toEqual(['127.0.0.9']);
    dns.set('example.org', 'A', ['127.0.0.10']);
    expect(await resolver.resolve4('example.org')).toEqual(['127.0.0.10']);
    dns.remove('example.org', 'A');
    await expect(resolver.resolve4('example.org')).rejects.toMatchObject({ code: 'ENODATA' });
    dns.remove('example.org');
    await expect(resolver.resolveTxt('example.org')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    dns.set('example.org', 'A', ['127.0.0.11']);
    dns.clear();
    await expect(resolver.resolve4('example.org')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  test('CNAME is followed inside the zone', async () => {
    dns.set('alias.example.org', 'CNAME', ['mx1.example.org']);
    dns.set('mx1.example.org', 'A', ['127.0.0.3']);
    expect(await resolver.resolve4('alias.example.org')).toEqual(['127.0.0.3']);
    expect(await resolver.resolveCname('alias.example.org')).toEqual(['mx1.example.org']);
  });

  test('bad values are rejected when set', () => {
    expect(() => dns.set('x.example', 'A', ['::1'])).toThrow(/IPv4/);
    expect(() => dns.set('x.example', 'AAAA', ['127.0.0.1'])).toThrow(/IPv6/);
    expect(() => dns.set('x.example', 'MX', ['mx.example'])).toThrow(/null MX/);
    expect(() => dns.set('x'.repeat(64) + '.example', 'A', ['127.0.0.1'])).toThrow(/too long/);
    expect(() => dns.set('x.example', 'CNAME', ['y'.repeat(64) + '.example'])).toThrow(/too long/);
  });
});

describe('test DNS server on other loopback addresses', () => {
  test('binds 127.0.0.2 and ::1, fixed port shared by UDP and TCP', async () => {
    const a = await startDnsServer({ host: '127.0.0.2' });
    const b = await startDnsServer({ host: '::1' });
    try {
      expect(b.address).toBe(`[::1]:${b.port}`);
      for (const s of [a, b]) {
        s.set('example.org', 'A', ['127.0.0.3']);
        expect(await resolverFor(s).resolve4('example.org')).toEqual(['127.0.0.3']);
      }
      // A fixed port that is taken fails loudly instead of silently moving elsewhere
      await expect(startDnsServer({ host: '127.0.0.2', port: a.port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
