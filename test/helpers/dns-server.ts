// A real authoritative DNS server on loopback for end-to-end tests, built on dns2. It serves
// UDP and TCP on the same port so that Node's resolver (c-ares) can be pointed at it with
// `setServers(['127.0.0.1:PORT'])` and fall back to TCP after a truncated UDP answer.
//
// Records live in memory and can be changed while the server runs; every answer has TTL 0
// and no SOA is sent with negative answers, so c-ares (which has a query cache) never
// caches anything and a change is visible to the very next lookup.
import * as net from 'node:net';
import DNS = require('dns2');

const { Packet } = DNS;

export type DnsType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR' | 'CNAME';

/**
 * A: IPv4 string. AAAA: IPv6 string. PTR/CNAME: a host name.
 * MX: `{ exchange, priority }`, or '.' / '' for a null MX (RFC 7505, same as `{ exchange: '', priority: 0 }`).
 * TXT: a string (split into 255-byte character-strings when longer) or a string[] sent as
 * those exact character-strings.
 */
export type DnsValue = string | { exchange: string; priority: number } | string[];

export interface DnsQuery {
  /** lower-case, without trailing dot */
  name: string;
  /** 'A', 'TXT', ... or 'TYPE<n>' for types this server does not know */
  type: string;
  transport: 'udp' | 'tcp';
}

export interface TestDnsServer {
  host: string;
  port: number;
  /** "127.0.0.1:PORT" ("[::1]:PORT" for IPv6), the form RELAY_DNS_SERVERS and Resolver.setServers take */
  address: string;
  /** Replaces all records of that name and type. */
  set(name: string, type: DnsType, values: DnsValue[]): void;
  add(name: string, type: DnsType, value: DnsValue): void;
  /**
   * Removes one type of the name, or the whole name. A name without records answers
   * NXDOMAIN; to get NODATA keep another type or `set(name, type, [])`.
   */
  remove(name: string, type?: DnsType): void;
  clear(): void;
  /** Every question received, in order. */
  queries: DnsQuery[];
  /** The TTL (seconds) of every record answered: 0 unless a test sets it. */
  ttl: number;
  close(): Promise<void>;
}

export interface DnsServerOptions {
  host?: string;
  /** 0 (default) = a random free port; UDP and TCP always share the port */
  port?: number;
  /**
   * Largest UDP answer sent; bigger answers go out with TC=1 and no records so the client
   * retries over TCP. Default: the size the client advertises with EDNS, else 512.
   */
  maxUdpPayload?: number;
}

type Encoded = { type: number; fields: Record<string, unknown> };

const TYPE_CODES: Record<DnsType, number> = {
  A: Packet.TYPE.A,
  AAAA: Packet.TYPE.AAAA,
  MX: Packet.TYPE.MX,
  TXT: Packet.TYPE.TXT,
  PTR: Packet.TYPE.PTR,
  CNAME: Packet.TYPE.CNAME,
};
const TYPE_NAMES = new Map<number, string>(Object.entries(Packet.TYPE).map(([k, v]) => [v as number, k]));

const NOERROR = 0;
const FORMERR = 1;
const NXDOMAIN = 3;
const NOTIMP = 4;

export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.+$/, '');
}

/** Normalized name, checked against the wire limits so a bad name fails in set(), not as a silent timeout. */
function checkedName(name: string): string {
  const n = normalizeName(name);
  if (n.length > 253 || n.split('.').some((label) => label.length > 63)) throw new Error(`DNS name too long: ${name}`);
  return n;
}

/** The reverse-lookup name of an IP: "2.0.0.127.in-addr.arpa" or the ip6.arpa nibble form. */
export function reverseName(ip: string): string {
  if (net.isIPv4(ip)) return ip.split('.').reverse().join('.') + '.in-addr.arpa';
  if (net.isIPv6(ip)) {
    const nibbles = expandIPv6(ip).join('').split('');
    return nibbles.reverse().join('.') + '.ip6.arpa';
  }
  throw new Error(`reverseName: not an IP address: ${ip}`);
}

/** Eight 4-digit hex groups; accepts "::" and an embedded IPv4 tail. dns2's own parser does not. */
function expandIPv6(address: string): string[] {
  let addr = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    addr = addr.slice(0, -v4[1].length) + ((b[0] << 8) | b[1]).toString(16) + ':' + ((b[2] << 8) | b[3]).toString(16);
  }
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => g.padStart(4, '0'));
}

/** Split a TXT value into character-strings of at most 255 bytes (RFC 1035 3.3.14). */
function txtChunks(value: string): Buffer[] {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length === 0) return [bytes];
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 255) out.push(bytes.subarray(i, i + 255));
  return out;
}

function encodeValue(type: DnsType, value: DnsValue): Encoded {
  const code = TYPE_CODES[type];
  const where = `${type} value ${JSON.stringify(value)}`;
  if (Array.isArray(value)) {
    if (type !== 'TXT') throw new Error(`${where}: a string[] is only valid for TXT`);
    const chunks = value.map((s) => Buffer.from(s, 'utf8'));
    if (chunks.some((c) => c.length > 255)) throw new Error(`${where}: a character-string is longer than 255 bytes`);
    return { type: code, fields: { data: chunks } };
  }
  if (typeof value === 'object') {
    if (type !== 'MX') throw new Error(`${where}: an object is only valid for MX`);
    return { type: code, fields: { exchange: checkedName(value.exchange), priority: value.priority } };
  }
  switch (type) {
    case 'A':
      if (!net.isIPv4(value)) throw new Error(`${where}: not an IPv4 address`);
      return { type: code, fields: { address: value } };
    case 'AAAA':
      if (!net.isIPv6(value)) throw new Error(`${where}: not an IPv6 address`);
      // dns2 writes each group with parseInt(…, 16), so hand it the fully expanded form
      return { type: code, fields: { address: expandIPv6(value).join(':') } };
    case 'MX': {
      // "." or "" is a null MX; "10 mx.example.org" is accepted for convenience
      if (value.trim() === '' || value.trim() === '.') return { type: code, fields: { exchange: '', priority: 0 } };
      const m = /^(\d+)\s+(\S+)$/.exec(value.trim());
      if (!m) throw new Error(`${where}: use { exchange, priority }, "PRIO HOST" or "." for a null MX`);
      return { type: code, fields: { exchange: checkedName(m[2]), priority: Number(m[1]) } };
    }
    case 'TXT':
      return { type: code, fields: { data: txtChunks(value) } };
    case 'PTR':
    case 'CNAME':
      return { type: code, fields: { domain: checkedName(value) } };
  }
}

function onceListening(listen: (done: () => void) => void, emitter: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    emitter.once('error', onError);
    listen(() => {
      emitter.off('error', onError);
      resolve();
    });
  });
}

export async function startDnsServer(opts: DnsServerOptions = {}): Promise<TestDnsServer> {
  const host = opts.host ?? '127.0.0.1';
  const ipv6 = net.isIPv6(host);
  // name -> type code -> encoded records
  const zone = new Map<string, Map<number, Encoded[]>>();
  const queries: DnsQuery[] = [];

  function answer(request: DNS.Packet, transport: 'udp' | 'tcp'): DNS.Packet {
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const q = request.questions[0];
    if (!q || request.header.opcode !== 0) {
      response.header.rcode = q ? NOTIMP : FORMERR;
      return response;
    }
    queries.push({ name: normalizeName(q.name), type: TYPE_NAMES.get(q.type) ?? `TYPE${q.type}`, transport });

    // Follow CNAMEs inside the zone, like any authoritative server would; the owner name of
    // the first answer keeps the case of the question.
    let owner = q.name;
    let rcode = NOERROR;
    for (let hop = 0; hop < 8; hop++) {
      const node = zone.get(normalizeName(owner));
      if (!node) {
        rcode = NXDOMAIN;
        break;
      }
      const wanted = q.type === Packet.TYPE.ANY ? [...node.values()].flat() : node.get(q.type);
      if (wanted?.length) {
        for (const rec of wanted) response.answers.push(resource(owner, rec));
        break;
      }
      const cname = node.get(Packet.TYPE.CNAME)?.[0];
      if (!cname) break; // NODATA: the name exists, the type does not
      response.answers.push(resource(owner, cname));
      owner = cname.fields.domain as string;
    }
    response.header.rcode = rcode;

    // Answer EDNS with EDNS (RFC 6891 6.1.1)
    if (request.additionals.some((r) => r && r.type === Packet.TYPE.EDNS)) {
      response.additionals.push(Packet.Resource.EDNS([]));
    }
    return response;
  }

  function resource(owner: string, rec: Encoded): DNS.Packet.Resource {
    return new Packet.Resource({ name: owner, type: rec.type, class: Packet.CLASS.IN, ttl: server.ttl, ...rec.fields });
  }

  /** RFC 1035 4.2.1: a UDP answer that does not fit is sent with TC=1 and nothing but the question. */
  function fitUdp(request: DNS.Packet, response: DNS.Packet): Buffer {
    const opt = request.additionals.find((r) => r && r.type === Packet.TYPE.EDNS);
    let limit = Math.max(512, opt?.class ?? 512);
    if (opts.maxUdpPayload) limit = Math.min(limit, opts.maxUdpPayload);
    const full = response.toBuffer();
    if (full.length <= limit) return full;
    const truncated = Packet.createResponseFromRequest(request);
    truncated.header.aa = 1;
    truncated.header.tc = 1;
    truncated.header.rcode = response.header.rcode;
    return truncated.toBuffer();
  }

  // dns2's servers are a dgram.Socket and a net.Server; we bind them ourselves so both get
  // the same port. With port 0 the random UDP port may be taken for TCP: then start over.
  let udp: DNS.UDPServer;
  let tcp: DNS.TCPServer;
  const sockets = new Set<net.Socket>();
  let port = opts.port ?? 0;
  for (let attempt = 1; ; attempt++) {
    udp = DNS.createUDPServer({ type: ipv6 ? 'udp6' : 'udp4' });
    tcp = DNS.createTCPServer();
    await onceListening((done) => udp.bind(port, host, done), udp);
    try {
      await onceListening((done) => tcp.listen(udp.address().port, host, done), tcp);
      port = udp.address().port;
      break;
    } catch (err) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (opts.port || attempt >= 20) throw err;
    }
  }
  udp.on('request', (request, send) => {
    send(fitUdp(request, answer(request, 'udp'))).catch(() => undefined); // socket closed meanwhile
  });
  tcp.on('request', (request, send) => {
    // dns2's TCP send() writes synchronously and returns undefined, despite its typings
    send(answer(request, 'tcp'));
  });
  tcp.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // Errors after startup (e.g. a client resetting a TCP connection) must not crash the test run
  udp.on('error', () => undefined);
  tcp.on('error', () => undefined);
  tcp.on('requestError', () => undefined);
  udp.on('requestError', () => undefined);

  const server: TestDnsServer = {
    host,
    port,
    address: ipv6 ? `[${host}]:${port}` : `${host}:${port}`,
    queries,
    ttl: 0,
    set(name, type, values) {
      const key = checkedName(name);
      const encoded = values.map((v) => encodeValue(type, v)); // validate before changing anything
      const node = zone.get(key) ?? new Map<number, Encoded[]>();
      node.set(TYPE_CODES[type], encoded);
      zone.set(key, node);
    },
    add(name, type, value) {
      const key = checkedName(name);
      const encoded = encodeValue(type, value);
      const node = zone.get(key) ?? new Map<number, Encoded[]>();
      node.set(TYPE_CODES[type], [...(node.get(TYPE_CODES[type]) ?? []), encoded]);
      zone.set(key, node);
    },
    remove(name, type) {
      if (type === undefined) zone.delete(normalizeName(name));
      else {
        const node = zone.get(normalizeName(name));
        node?.delete(TYPE_CODES[type]);
        if (node?.size === 0) zone.delete(normalizeName(name)); // no records left: the name is gone (NXDOMAIN)
      }
    },
    clear() {
      zone.clear();
    },
    async close() {
      for (const s of sockets) s.destroy(); // c-ares keeps TCP connections open
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
  return server;
}
