// Doctor check of DANE (delivery.dane on): can the relay trust DNSSEC? Its resolver must be on
// this machine (loopback) and validate: the root DNSKEY must come with the AD bit. The same
// question the relay asks at start (delivery/tls-policy/dane-at-start.ts).
import { Dane } from '../delivery/tls-policy/dane';
import { check, Check } from './check';
import { DoctorContext } from './context';

export async function daneChecks(ctx: DoctorContext): Promise<Check[]> {
  const { config } = ctx;
  if (!config.delivery.dane) return [];
  if (config.delivery.smarthost) {
    return [check('dane-resolver', 'info', `delivery.dane is on, but all mail goes to the smarthost ${config.delivery.smarthost}: DANE applies to MX delivery only`)];
  }
  const dane = new Dane({ servers: config.dns.servers, timeoutMs: Math.max(1, config.dns.timeout) * 1000, mxPort: config.delivery.mxPort });
  const verdict = await dane.checkResolver();
  return [verdict.ok
    ? check('dane-resolver', 'pass', verdict.detail)
    : check('dane-resolver', 'fail', verdict.detail, verdict.fix ?? null)];
}
