// DNS questions whose answer says whether DNSSEC validated it: the DO bit set, the AD bit of
// the answer read. Node's resolver (c-ares) does not expose the AD bit, so these queries are
// made here with dns-packet, over UDP to the relay's resolvers (dns.servers, else the
// system's), again over TCP when the UDP answer is truncated.
// The AD bit is only as good as the path it travelled: it is believed only from a resolver
// on loopback (127.0.0.0/8, ::1), as Postfix and maddy do; from any other resolver a
// forger on the way could set it. trustedResolvers() says whether the relay can use it.
import dgram from 'node:dgram';
import { getServers } from 'node:dns';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import { parseHostPort } from '../config/schema';

export interface DnsServer { host: string; port: number }

export interface DnssecAnswer {
  /** NOERROR, NXDOMAIN, SERVFAIL, ... (a validating resolver answers SERVFAIL to bogus data) */
  rcode: string;
  /** The resolver validated the answer (AD bit), positive or negative. */
  authentic: boolean;
  answers: dnsPacket.Answer[];
  /** host:port of the resolver that answered */
  server: string;
}

/** The resolvers the relay asks: dns.servers, or the system's (/etc/resolv.conf) when empty. */
export function resolverServers(configured: string[]): DnsServer[] {
  const list = configured.length ? configured : getServers();
  return list.map((s) => {
    // getServers() gives "1.2.3.4", "1.2.3.4:5353", "::1" or "[::1]:5353"
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
    if (bracketed) return { host: bracketed[1], port: bracketed[2] ? Number(bracketed[2]) : 53 };
    if (net.isIPv6(s)) return { host: s, port: 53 };
    return parseHostPort(s, 53);
  });
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

export function isLoopback(host: string): boolean {
  const family = net.isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/** Whether AD bits from these resolvers can be believed, and if not, why (for a log line). */
export function trustedResolvers(servers: DnsServer[]): { ok: true } | { ok: false; reason: string } {
  if (!servers.length) return { ok: false, reason: 'no DNS resolver is configured (dns.servers is empty and the system names none)' };
  const remote = servers.filter((s) => !isLoopback(s.host));
  if (remote.length) {
    return {
      ok: false,
      reason: `the DNS resolver ${remote.map(format).join(', ')} is not on this machine (loopback), so its DNSSEC verdict (the AD bit) could be forged on the way`,
    };
  }
  return { ok: true };
}

export function format(server: DnsServer): string {
  return server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

export class DnssecLookup {
  constructor(private readonly servers: DnsServer[], private readonly timeoutMs: number) {}

  /** Asks each resolver in turn until one answers; throws (code ETIMEOUT, ...) when none does. */
  async query(name: string, type: dnsPacket.RecordType): Promise<DnssecAnswer> {
    let lastError: unknown = new Error('no DNS resolver configured');
    for (const server of this.servers) {
      try {
        return await this.ask(server, name, type);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  private async ask(server: DnsServer, name: string, type: dnsPacket.RecordType): Promise<DnssecAnswer> {
    const id = randomInt(0, 65536);
    const query = dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
      questions: [{ type, name, class: 'IN' }],
      // DO: the resolver validates for us and says so; 1232 bytes: the DNS flag day 2020 size
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer],
    });
    let response = await udpExchange(server, query, id, this.timeoutMs);
    if (response.flags !== undefined && (response.flags & dnsPacket.TRUNCATED_RESPONSE)) {
      response = await tcpExchange(server, query, id, this.timeoutMs);
    }
    const rcode = (response as unknown as { rcode?: string }).rcode ?? 'NOERROR';
    return {
      rcode,
      authentic: !!((response.flags ?? 0) & dnsPacket.AUTHENTIC_DATA),
      answers: response.answers ?? [],
      server: format(server),
    };
  }
}

function timeoutError(server: DnsServer, ms: number): Error {
  return Object.assign(new Error(`the DNS resolver ${format(server)} did not answer within ${ms / 1000} s`), { code: 'ETIMEOUT' });
}

function udpExchange(server: DnsServer, query: Buffer, id: number, timeoutMs: number): Promise<dnsPacket.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    const done = (err: Error | null, packet?: dnsPacket.DecodedPacket) => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(packet!);
    };
    const timer = setTimeout(() => done(timeoutError(server, timeoutMs)), timeoutMs);
    socket.on('error', (err) => done(err));
    socket.on('message', (msg, from) => {
      // only the answer to this question, from the server asked (anything else is ignored)
      if (from.port !== server.port) return;
      let packet: dnsPacket.DecodedPacket;
      try {
        packet = dnsPacket.decode(msg);
      } catch {
        return;
      }
      if (packet.id === id && packet.type === 'response') done(null, packet);
    });
    socket.send(query, server.port, server.host, (err) => {
      if (err) done(err);
    });
  });
}

function tcpExchange(server: DnsServer, query: Buffer, id: number, timeoutMs: number): Promise<dnsPacket.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let buffered = Buffer.alloc(0);
    const done = (err: Error | null, packet?: dnsPacket.DecodedPacket) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(packet!);
    };
    const timer = setTimeout(() => done(timeoutError(server, timeoutMs)), timeoutMs);
    socket.on('error', (err) => done(err));
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(query.length);
      socket.write(Buffer.concat([length, query]));
    });
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const size = buffered.readUInt16BE(0);
      if (buffered.length < 2 + size) return;
      try {
        const packet = dnsPacket.decode(buffered.subarray(2, 2 + size));
        if (packet.id !== id) done(new Error(`the DNS resolver ${format(server)} answered another question over TCP`));
        else done(null, packet);
      } catch (err) {
        done(new Error(`the DNS resolver ${format(server)} sent an answer that cannot be read: ${(err as Error).message}`));
      }
    });
    socket.on('end', () => done(new Error(`the DNS resolver ${format(server)} closed the TCP connection without an answer`)));
  });
}
