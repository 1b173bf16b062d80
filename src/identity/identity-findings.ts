// What is right and wrong with the sending identity (sending-identity.ts report), one finding
// per requirement of DESIGN.md: a fixed source address, a PTR record, forward confirmation
// (FCrDNS), HELO = PTR name, HELO a fully qualified name that resolves. Each finding that
// is not a pass carries the fix: the zone-file line or the setting to change. `serve` logs
// the problems at start, `doctor` prints all of them. A check that cannot be judged because
// an earlier one failed is `info` ("not checked"), so one cause is reported once.
import net from 'node:net';
import { ptrOwnerName } from './reverse-name';
import { confirms, heloOrigin, IdentityReport } from './sending-identity';

export type FindingStatus = 'pass' | 'warn' | 'fail' | 'error' | 'info';

export interface IdentityFinding {
  id: string;
  status: FindingStatus;
  detail: string;
  fix: string | null;
}

const DNS_FIX = 'check dns.servers (env RELAY_DNS_SERVERS) and dns.timeout (env RELAY_DNS_TIMEOUT), then run the check again';

/** The zone-file line that makes `name` resolve to `ip`. */
export function addressRecord(name: string, ip: string): string {
  return `${name}. 3600 IN ${net.isIPv6(ip) ? 'AAAA' : 'A'} ${ip}`;
}

/** The PTR line for `ip` naming `name` (published by whoever runs the address block). */
export function ptrRecord(ip: string, name: string): string {
  return `${ptrOwnerName(ip)}. 3600 IN PTR ${name}.`;
}

export function judgeIdentity(report: IdentityReport): IdentityFinding[] {
  const out: IdentityFinding[] = [];
  const ip = report.localAddress;
  const helo = report.heloName;
  const origin = heloOrigin(report);

  if (!ip) {
    out.push({
      id: 'identity.local-address', status: 'warn',
      detail: 'delivery.localAddress (RELAY_LOCAL_ADDRESS) is not set: the OS chooses the source IP, so HELO and PTR cannot be guaranteed to match, and the PTR, FCrDNS, blocklist and SPF checks of the sending IP cannot be run',
      fix: 'set delivery.localAddress (env RELAY_LOCAL_ADDRESS) to the public IP this relay sends from, the one whose PTR record names the HELO name',
    });
  } else {
    out.push({ id: 'identity.local-address', status: 'pass', detail: `the relay delivers from ${ip} (delivery.localAddress)`, fix: null });
  }

  // HELO: a fully qualified name with addresses.
  const heloResolves: IdentityFinding = { id: 'identity.helo-resolves', status: 'pass', detail: '', fix: null };
  const ptrNames = report.ptr?.status === 'found' ? report.ptr.names : [];
  const suggestion = ptrNames[0] ?? 'relay.example.net (a name whose A record is this relay\'s IP and which its PTR record names)';
  if (report.heloProblem) {
    Object.assign(heloResolves, {
      status: 'fail', detail: `the HELO name "${helo}" (from ${origin}) is not a fully qualified domain name: ${report.heloProblem}`,
      fix: `set delivery.heloName (env RELAY_HELO_NAME) to ${suggestion}`,
    });
  } else if (!report.heloAddresses) {
    Object.assign(heloResolves, { status: 'info', detail: `the HELO name ${helo} (from ${origin}) was not looked up`, fix: null });
  } else if (report.heloAddresses.status === 'error') {
    Object.assign(heloResolves, { status: 'error', detail: `could not look up the HELO name ${helo}: ${report.heloAddresses.reason}`, fix: DNS_FIX });
  } else if (report.heloAddresses.status === 'missing') {
    Object.assign(heloResolves, {
      status: 'fail', detail: `the HELO name ${helo} (from ${origin}) has no A or AAAA record: receivers that look it up reject or score the mail`,
      fix: addressRecord(helo, ip ?? '<the public IPv4 address this relay sends from>'),
    });
  } else {
    Object.assign(heloResolves, { detail: `the HELO name ${helo} (from ${origin}) resolves to ${report.heloAddresses.addresses.join(', ')}` });
  }

  if (!ip) {
    out.push(heloResolves);
    return out;
  }

  // PTR of the sending address.
  const ptr = report.ptr!;
  if (ptr.status === 'error') {
    out.push({ id: 'identity.ptr', status: 'error', detail: `could not look up the PTR record of ${ip}: ${ptr.reason}`, fix: DNS_FIX });
  } else if (ptr.status === 'missing') {
    out.push({
      id: 'identity.ptr', status: 'fail',
      detail: `${ip} has no PTR record (reverse DNS): Gmail answers 5.7.25, GMX "Bad DNS PTR". The PTR is set by whoever runs the address (the "reverse DNS" setting of your hosting provider), not in your own zone`,
      fix: ptrRecord(ip, helo),
    });
  } else {
    out.push({ id: 'identity.ptr', status: 'pass', detail: `${ip} has the PTR record ${ptr.names.join(', ')}`, fix: null });
  }

  // FCrDNS: a PTR name resolves back to the address.
  if (ptr.status !== 'found') {
    out.push({ id: 'identity.fcrdns', status: 'info', detail: 'not checked: it needs the PTR record (identity.ptr)', fix: null });
  } else if (ptrNames.some((n) => confirms(report.ptrAddresses.get(n), ip))) {
    const name = ptrNames.find((n) => confirms(report.ptrAddresses.get(n), ip))!;
    out.push({ id: 'identity.fcrdns', status: 'pass', detail: `the PTR name ${name} resolves back to ${ip} (forward-confirmed reverse DNS)`, fix: null });
  } else {
    const name = ptrNames[0];
    const lookup = report.ptrAddresses.get(name);
    if (!lookup) {
      out.push({ id: 'identity.fcrdns', status: 'fail', detail: `the PTR name "${name}" of ${ip} is not a domain name that can resolve`, fix: `${ptrRecord(ip, helo)} (have the PTR changed to the HELO name)` });
    } else if (lookup.status === 'error') {
      out.push({ id: 'identity.fcrdns', status: 'error', detail: `could not look up the PTR name ${name}: ${lookup.reason}`, fix: DNS_FIX });
    } else if (lookup.status === 'missing' && name === helo && report.heloAddresses?.status === 'missing') {
      // The same lookup as the HELO name's: identity.helo-resolves reports it.
      out.push({ id: 'identity.fcrdns', status: 'info', detail: `not checked: the PTR name ${name} is the HELO name, which does not resolve (identity.helo-resolves)`, fix: null });
    } else {
      out.push({
        id: 'identity.fcrdns', status: 'fail',
        detail: lookup.status === 'missing'
          ? `the PTR name ${name} of ${ip} has no A or AAAA record, so reverse DNS is not forward-confirmed (Gmail 5.7.25)`
          : `the PTR name ${name} of ${ip} resolves to ${lookup.addresses.join(', ')}, not to ${ip}: reverse DNS is not forward-confirmed (Gmail 5.7.25)`,
        fix: addressRecord(name, ip),
      });
    }
  }

  // HELO = PTR name.
  if (ptr.status !== 'found') {
    out.push({ id: 'identity.helo-ptr', status: 'info', detail: 'not checked: it needs the PTR record (identity.ptr)', fix: null });
  } else if (ptrNames.includes(helo)) {
    out.push({ id: 'identity.helo-ptr', status: 'pass', detail: `the HELO name ${helo} is the PTR name of ${ip}`, fix: null });
  } else {
    out.push({
      id: 'identity.helo-ptr', status: 'fail',
      detail: `the HELO name ${helo} (from ${origin}) is not the PTR name of ${ip} (${ptrNames.join(', ')}): GMX and others want them equal ("banner mismatch")`,
      fix: `set delivery.heloName (env RELAY_HELO_NAME) to ${ptrNames[0]}, or have the PTR changed: ${ptrRecord(ip, helo)}`,
    });
  }
  out.push(heloResolves);
  return out;
}
