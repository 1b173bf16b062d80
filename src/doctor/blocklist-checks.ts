// Doctor checks of DNS blocklists (RFC 5782) for the sending IP: Spamhaus ZEN, whose answer
// says which list (SBL, XBL, PBL), and the further zones of doctor.blocklists. An answer in
// 127.255.255.252-255 is no listing: Spamhaus refuses the query (public resolver, too many
// queries, bad DQS key), so the result is `error`, with what to change.
import { isNotFound } from '../dns/resolver';
import { reversedLabels } from '../identity/reverse-name';
import { check, Check, dnsError } from './check';
import { DoctorContext } from './context';

const REFUSED: Record<string, string> = {
  '127.255.255.252': 'the zone name is wrong (a typing error in the DQS key?)',
  '127.255.255.253': 'the query was refused',
  '127.255.255.254': 'the query came through a public or open resolver (such as 8.8.8.8, 1.1.1.1), which Spamhaus refuses to answer',
  '127.255.255.255': 'the resolver sent too many queries and is blocked',
};

const SPAMHAUS_LISTS: Record<string, string> = {
  '127.0.0.2': 'SBL (a spam source or spam operation)',
  '127.0.0.3': 'SBL CSS (snowshoe spam)',
  '127.0.0.4': 'XBL (a hijacked or infected machine)',
  '127.0.0.5': 'XBL (a hijacked or infected machine)',
  '127.0.0.6': 'XBL (a hijacked or infected machine)',
  '127.0.0.7': 'XBL (a hijacked or infected machine)',
  '127.0.0.9': 'DROP (a hijacked network)',
};

const REFUSED_FIX =
  'set dns.servers (env RELAY_DNS_SERVERS) to a recursive resolver of your own (not 8.8.8.8 or 1.1.1.1), ' +
  'or use a free Spamhaus DQS key: doctor.spamhausZone (env RELAY_DOCTOR_SPAMHAUS_ZONE) = YOURKEY.zen.dq.spamhaus.net';

export async function blocklistChecks(ctx: DoctorContext): Promise<Check[]> {
  const ip = ctx.identity.localAddress;
  const zones = [
    ...(ctx.config.doctor.spamhausZone ? [{ zone: ctx.config.doctor.spamhausZone, spamhaus: true }] : []),
    ...ctx.config.doctor.blocklists.map((zone) => ({ zone, spamhaus: false })),
  ];
  if (!zones.length) return [];
  if (!ip) {
    return [check('blocklist', 'info', 'not checked: blocklists are asked about the sending IP, and delivery.localAddress is not set (identity.local-address)')];
  }
  return Promise.all(zones.map((z) => askBlocklist(ctx, ip, z.zone, z.spamhaus)));
}

async function askBlocklist(ctx: DoctorContext, ip: string, zone: string, spamhaus: boolean): Promise<Check> {
  const id = spamhaus ? 'blocklist.spamhaus' : `blocklist.${zone}`;
  const name = `${reversedLabels(ip)}.${zone}`;
  let answers: string[];
  try {
    answers = await ctx.resolver.a(name);
  } catch (err) {
    if (isNotFound(err)) return check(id, 'pass', `${ip} is not listed in ${zone}`);
    return dnsError(id, `${name} (blocklist ${zone})`, err);
  }
  const refused = answers.find((a) => REFUSED[a]);
  if (refused) {
    return check(id, 'error', `${zone} did not answer whether ${ip} is listed: it answered ${refused}, which means ${REFUSED[refused]}`, REFUSED_FIX);
  }
  const listed = answers.filter((a) => a.startsWith('127.'));
  if (!listed.length) {
    return check(id, 'warn', `${zone} answered ${answers.join(', ')} for ${ip}, which is no blocklist answer (127.x): the zone name may be wrong or the resolver rewrites answers`,
      'check the zone name in doctor.blocklists (env RELAY_DOCTOR_BLOCKLISTS) and use a resolver that does not rewrite answers');
  }
  if (spamhaus) {
    if (listed.some((a) => a === '127.0.0.10' || a === '127.0.0.11')) {
      const others = listed.filter((a) => SPAMHAUS_LISTS[a]).map((a) => SPAMHAUS_LISTS[a]);
      return check(id, 'fail',
        `${ip} is in the Spamhaus PBL${others.length ? ` (and ${others.join(', ')})` : ''}: a dynamic or residential range whose owner says it should not send mail direct to MX hosts ` +
        '(Outlook answers 550 DY-001, T-Online 554 DIAL, GMX refuses)',
        'send through your provider\'s mail server: delivery.smarthost (env RELAY_SMARTHOST); or, if this is a static address you control, ' +
        `ask for its removal at https://check.spamhaus.org/ (look up ${ip})`);
    }
    const lists = [...new Set(listed.map((a) => SPAMHAUS_LISTS[a] ?? `a Spamhaus list (answer ${a})`))];
    return check(id, 'fail', `${ip} is listed in Spamhaus ${lists.join(' and ')}: Yahoo, Outlook and GMX reject its mail`,
      `look ${ip} up at https://check.spamhaus.org/ for the reason, fix it, and request the removal there`);
  }
  return check(id, 'fail', `${ip} is listed in ${zone} (answer ${listed.join(', ')}): receivers that use this list reject or score its mail`,
    `look ${ip} up on the website of ${zone} for the reason, fix it, and request the removal there`);
}
