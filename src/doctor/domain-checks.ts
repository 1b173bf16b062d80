// Doctor check that the sending domain exists as a mail domain: MX, or else A/AAAA (RFC 5321
// 5.1 implicit MX). GMX and Yahoo refuse senders whose domain cannot receive a reply.
import { isNotFound } from '../dns/resolver';
import { lookupAddresses } from '../identity/sending-identity';
import { check, Check, dnsError } from './check';
import { DoctorContext } from './context';

export async function domainChecks(ctx: DoctorContext, domain: string): Promise<Check[]> {
  const id = 'domain.exists';
  const fix = `${domain}. 3600 IN MX 10 mail.${domain}.`;
  try {
    const mx = await ctx.resolver.mx(domain);
    if (mx.length === 1 && (mx[0].exchange === '' || mx[0].exchange === '.')) {
      return [check(id, 'warn', `${domain} publishes a null MX (RFC 7505): it says it receives no mail, so replies and bounces cannot reach it and some receivers refuse its mail`, fix)];
    }
    if (mx.length) return [check(id, 'pass', `${domain} has MX ${mx.sort((a, b) => a.priority - b.priority).map((m) => m.exchange).join(', ')}`)];
  } catch (err) {
    if (!isNotFound(err)) return [dnsError(id, `MX ${domain}`, err)];
  }
  const addresses = await lookupAddresses(ctx.resolver, domain);
  if (addresses.status === 'found') return [check(id, 'pass', `${domain} has no MX but an address record (${addresses.addresses.join(', ')}), where mail to it goes`)];
  if (addresses.status === 'error') return [check(id, 'error', `could not look up ${domain}: ${addresses.reason}`, 'check dns.servers (env RELAY_DNS_SERVERS), then run dkim-relay doctor again')];
  return [check(id, 'fail', `${domain} has no MX and no A or AAAA record: GMX and Yahoo reject mail from domains that cannot receive; publish an MX naming the host that receives mail of ${domain} (mail.${domain} in the fix stands for it)`, fix)];
}
