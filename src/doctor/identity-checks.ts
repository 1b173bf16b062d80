// Doctor checks of the relay's own identity (domain null in the report): the findings that
// `serve` also logs at start (identity/identity-findings.ts), plus what only the doctor
// looks at: a PTR name that looks generic or dynamic, and SPF for the HELO name, which
// receivers check for mail with an empty envelope sender (the relay's bounces).
import net from 'node:net';
import { spf } from 'mailauth/lib/spf';
import { judgeIdentity, ptrRecord } from '../identity/identity-findings';
import { expandIPv6 } from '../identity/reverse-name';
import { check, Check, DNS_FIX, txtRecordLine } from './check';
import { DoctorContext } from './context';
import { mailauthResolver } from './mailauth-resolver';

/** Word beginnings providers use in PTR names of dynamic, residential or pooled addresses ("dslb", "pools"). */
const GENERIC_PREFIXES = [
  'dyn', 'dsl', 'adsl', 'vdsl', 'xdsl', 'pool', 'dhcp', 'dial', 'ppp', 'cable', 'modem', 'broadband',
  'cust', 'client', 'resid', 'subscr', 'unknown',
];

/** Why a PTR name looks generic (made from the address, or a dynamic-range word), or null. */
export function genericPtrReason(name: string, ip: string): string | null {
  const n = name.toLowerCase();
  if (net.isIPv4(ip)) {
    const o = ip.split('.');
    const sep = '[-._x]?';
    for (const order of [o, [...o].reverse()]) {
      const plain = new RegExp(`(^|\\D)${order.join(sep)}(\\D|$)`);
      const padded = new RegExp(order.map((x) => x.padStart(3, '0')).join(sep));
      if (plain.test(n) || padded.test(n)) return `it contains the digits of the address ${ip}`;
    }
    const hex = o.map((x) => Number(x).toString(16).padStart(2, '0')).join('');
    if (n.includes(hex)) return `it contains the address ${ip} in hexadecimal`;
  } else if (net.isIPv6(ip)) {
    const groups = expandIPv6(ip);
    const tail = groups.slice(4).join('');
    if (n.replace(/[-.:]/g, '').includes(tail)) return `it contains the digits of the address ${ip}`;
  }
  const words = n.split(/[^a-z]+/).filter(Boolean);
  const word = words.find((w) => GENERIC_PREFIXES.some((p) => w.startsWith(p)));
  if (word) return `it contains "${word}", a word providers use for dynamic or residential addresses`;
  return null;
}

export async function identityChecks(ctx: DoctorContext): Promise<Check[]> {
  const report = ctx.identity;
  const checks: Check[] = judgeIdentity(report);
  const ip = report.localAddress;

  if (ip && report.ptr?.status === 'found') {
    const generic = report.ptr.names.map((n) => ({ n, why: genericPtrReason(n, ip) })).find((x) => x.why);
    checks.push(generic
      ? check('identity.ptr-generic', 'warn',
        `the PTR name ${generic.n} looks generic or dynamic (${generic.why}): Outlook, T-Online and spam filters treat such addresses as home connections that should not send direct`,
        `have the PTR changed to a name of your own domain: ${ptrRecord(ip, report.heloSource === 'configured' && !genericPtrReason(report.heloName, ip) ? report.heloName : 'relay.<your domain>')}`)
      : check('identity.ptr-generic', 'pass', `the PTR name ${report.ptr.names[0]} does not look generic or dynamic`));
  }

  if (ip && !report.heloProblem) checks.push(await heloSpf(ctx, ip, report.heloName));

  if (ctx.config.delivery.smarthost) {
    checks.push(check('identity.smarthost', 'info',
      `delivery goes through the smarthost ${ctx.config.delivery.smarthost}: receivers see its IP, PTR and HELO, so its identity is what counts; the checks of this relay's IP matter for direct delivery only`));
  }
  return checks;
}

/** SPF of the HELO name: what receivers evaluate for bounces (empty MAIL FROM, RFC 7208 2.3). */
async function heloSpf(ctx: DoctorContext, ip: string, helo: string): Promise<Check> {
  const id = 'identity.helo-spf';
  const mechanism = `${net.isIPv6(ip) ? 'ip6' : 'ip4'}:${ip}`;
  const result = await spf({ ip, helo, mta: 'dkim-relay-doctor', resolver: mailauthResolver(ctx.resolver), maxElapsedTime: ctx.spfTimeLimitMs } as Parameters<typeof spf>[0]);
  const status = result.status.result;
  if (status === 'pass') return check(id, 'pass', `SPF of the HELO name ${helo} authorizes ${ip} (bounces have an empty envelope sender, so receivers check this one)`);
  if (status === 'temperror') return check(id, 'error', `could not evaluate SPF of the HELO name ${helo}: ${result.status.comment ?? 'DNS error'}`, DNS_FIX);
  const fix = txtRecordLine(helo, `v=spf1 ${mechanism} -all`);
  if (status === 'none') {
    return check(id, 'warn', `the HELO name ${helo} has no SPF record: receivers check it for bounces (empty envelope sender), and it is a cheap sign of a real mail server`, fix);
  }
  return check(id, 'warn', `SPF of the HELO name ${helo} gives "${status}" for ${ip}, so bounces from the relay fail SPF`, fix);
}
