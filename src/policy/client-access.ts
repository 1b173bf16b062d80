// Who may use the relay: a client on a trusted network relays without AUTH; anyone else
// must authenticate, and AUTH is only taken over TLS, loopback aside (DESIGN rule 3):
// both are lists of networks, `trustedNetworks` and `plainAuthNetworks` in the config.
import net from 'node:net';
import { parseCidr } from '../config/schema';

export class NetworkList {
  private readonly list = new net.BlockList();
  constructor(cidrs: string[]) {
    for (const cidr of cidrs) {
      const { address, prefix, family } = parseCidr(cidr);
      this.list.addSubnet(address, prefix, family);
    }
  }

  contains(address: string): boolean {
    const plain = unmapIPv4(address);
    const family = net.isIPv4(plain) ? 'ipv4' : net.isIPv6(plain) ? 'ipv6' : null;
    return family !== null && this.list.check(plain, family);
  }
}

/** ::ffff:192.0.2.1 (an IPv4 client on a dual-stack socket) -> 192.0.2.1 */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/**
 * What a client is counted by (connection and login limits): its IPv4 address, or the /64 of
 * its IPv6 address, which one host or subscriber usually holds whole.
 */
export function clientKey(address: string): string {
  const plain = unmapIPv4(address.split('%')[0].toLowerCase());
  if (!net.isIPv6(plain)) return plain;
  return `${expandIPv6(plain).slice(0, 4).join(':')}::/64`;
}

function expandIPv6(address: string): string[] {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const parse = (part: string) => (part ? part.split(':') : []).flatMap((group) => {
    if (!group.includes('.')) return [group];
    // an embedded IPv4 address (::ffff:192.0.2.1 is unmapped above; others such as 64:ff9b::/96)
    const [a, b, c, d] = group.split('.').map(Number);
    return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
  });
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const zeros = tail === undefined ? [] : Array(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16).toString(16));
}
