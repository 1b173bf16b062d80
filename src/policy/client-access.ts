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
