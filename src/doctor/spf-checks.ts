// Doctor checks of SPF for a sending domain (RFC 7208): one v=spf1 record; the relay's IP
// authorized, evaluated by mailauth as receivers do; at most 10 terms that query DNS and at
// most 2 of those finding nothing ("void lookups"), counted over the whole include tree; no
// `ptr`; no `+all`. The fix is the domain's record with the relay's ip4:/ip6: added.
import net from 'node:net';
import { spf } from 'mailauth/lib/spf';
import { isNotFound, Resolver } from '../dns/resolver';
import { lookupAddresses } from '../identity/sending-identity';
import { check, Check, DNS_FIX, dnsError, txtRecordLine } from './check';
import { DoctorContext } from './context';
import { mailauthResolver } from './mailauth-resolver';

export const SPF_LOOKUP_LIMIT = 10;
export const SPF_VOID_LIMIT = 2;

function isSpfRecord(value: string): boolean {
  return /^v=spf1(\s|$)/i.test(value.trim());
}

function terms(record: string): string[] {
  return record.trim().split(/\s+/).slice(1);
}

function mechanismOf(term: string): { qualifier: string; name: string; value: string } {
  const m = /^([+?~-]?)([a-z0-9]+)(?:[:=](.*))?/i.exec(term);
  const rest = term.slice((m?.[1].length ?? 0) + (m?.[2].length ?? 0));
  return { qualifier: m?.[1] || '+', name: (m?.[2] ?? term).toLowerCase(), value: rest.replace(/^[:=]/, '') };
}

/** `record` with `mechanism` put first, where it matches before anything that costs a lookup. */
export function withMechanism(record: string, mechanism: string): string {
  const rest = terms(record).filter((t) => t.toLowerCase() !== mechanism.toLowerCase());
  return ['v=spf1', mechanism, ...rest].join(' ');
}

export interface SpfTreeCount {
  /** Terms that query DNS (include, a, mx, ptr, exists, redirect), where they are. */
  lookups: string[];
  /** Lookups that found nothing: NXDOMAIN or no records. */
  voids: string[];
  usesPtr: boolean;
  /** Lookups that failed (not "no such record"): the counts may be low then. */
  errors: string[];
}

/** Walks a record and everything it includes or redirects to, counting as RFC 7208 4.6.4 does. */
export async function countSpfLookups(resolver: Resolver, domain: string, record: string): Promise<SpfTreeCount> {
  const count: SpfTreeCount = { lookups: [], voids: [], usesPtr: false, errors: [] };
  const seen = new Set<string>([domain]);
  const walk = async (owner: string, text: string, depth: number): Promise<void> => {
    const list = terms(text);
    const hasAll = list.some((t) => mechanismOf(t).name === 'all');
    for (const term of list) {
      const { name, value } = mechanismOf(term);
      const target = (value.split('/')[0] || owner).replace(/\.$/, '');
      const where = owner === domain ? term : `${term} (in ${owner})`;
      const macro = target.includes('%');
      switch (name) {
        case 'include':
        case 'redirect': {
          if (name === 'redirect' && hasAll) break; // ignored next to "all" (RFC 7208 6.1)
          count.lookups.push(where);
          if (macro) break;
          let values: string[];
          try {
            values = await resolver.txt(target);
          } catch (err) {
            if (isNotFound(err)) count.voids.push(where);
            else count.errors.push(`${target}: ${(err as { code?: string }).code ?? 'error'}`);
            break;
          }
          const records = values.filter(isSpfRecord);
          if (!records.length) count.voids.push(where);
          if (records.length === 1 && depth < 10 && !seen.has(target)) {
            seen.add(target);
            await walk(target, records[0], depth + 1);
          }
          break;
        }
        case 'a':
        case 'exists': {
          count.lookups.push(where);
          if (macro) break;
          const found = name === 'a' ? await lookupAddresses(resolver, target) : await resolver.a(target).then(
            (addresses) => ({ status: 'found' as const, addresses }),
            (err) => (isNotFound(err) ? { status: 'missing' as const } : { status: 'error' as const, reason: String(err.code) }));
          if (found.status === 'missing') count.voids.push(where);
          if (found.status === 'error') count.errors.push(`${target}: ${found.reason}`);
          break;
        }
        case 'mx': {
          count.lookups.push(where);
          if (macro) break;
          try {
            const mx = await resolver.mx(target);
            if (!mx.length) count.voids.push(where);
          } catch (err) {
            if (isNotFound(err)) count.voids.push(where);
            else count.errors.push(`${target}: ${(err as { code?: string }).code ?? 'error'}`);
          }
          break;
        }
        case 'ptr':
          count.lookups.push(where);
          count.usesPtr = true;
          break;
        default:
          break;
      }
    }
  };
  await walk(domain, record, 0);
  return count;
}

export async function spfChecks(ctx: DoctorContext, domain: string): Promise<Check[]> {
  const ip = ctx.identity.localAddress;
  const mechanism = ip ? `${net.isIPv6(ip) ? 'ip6' : 'ip4'}:${ip}` : null;
  const placeholder = mechanism ?? 'ip4:<the public IP this relay sends from>';
  const notChecked = (why: string) => ['spf.authorizes-relay', 'spf.lookup-limit', 'spf.void-lookups', 'spf.ptr', 'spf.all']
    .map((id) => check(id, 'info', `not checked: ${why}`));

  let values: string[];
  try {
    values = await ctx.resolver.txt(domain);
  } catch (err) {
    if (!isNotFound(err)) return [dnsError('spf.record', `the TXT records of ${domain}`, err), ...notChecked('the SPF record could not be read (spf.record)')];
    values = [];
  }
  const records = values.filter(isSpfRecord);
  if (!records.length) {
    return [
      check('spf.record', 'fail', `${domain} has no SPF record (TXT "v=spf1 ..."): Gmail answers 5.7.27, WEB.DE rejects; list every server that sends mail of ${domain} in it`,
        txtRecordLine(domain, `v=spf1 ${placeholder} ~all`)),
      ...notChecked('there is no SPF record (spf.record)'),
    ];
  }
  if (records.length > 1) {
    // One record with the terms of all of them, the relay's first and one "all" at the end.
    const all = records.flatMap(terms).find((t) => mechanismOf(t).name === 'all') ?? '~all';
    const merged = [...new Set(records.flatMap(terms).filter((t) => !['all', 'redirect'].includes(mechanismOf(t).name)))];
    const value = ['v=spf1', ...(mechanism && !merged.includes(mechanism) ? [mechanism] : []), ...merged, all].join(' ');
    return [
      check('spf.record', 'fail', `${domain} has ${records.length} SPF records (${records.map((r) => `"${r}"`).join(', ')}): with more than one, SPF is a permanent error for every receiver (RFC 7208 4.5). Publish one record instead of these`,
        txtRecordLine(domain, value)),
      ...notChecked('there is more than one SPF record (spf.record)'),
    ];
  }
  const record = records[0].trim();
  const checks: Check[] = [check('spf.record', 'pass', `${domain} has one SPF record: "${record}"`)];

  // The relay's IPs (one per family), evaluated as a receiver would (mailauth, lazily: terms
  // after a match do not count); the fix adds the mechanism of every address not authorized.
  if (!ip || !mechanism) {
    checks.push(check('spf.authorizes-relay', 'info', 'not checked: delivery.localAddress is not set, so the sending IP is not known (identity.local-address)'));
  } else {
    const sources = ctx.identities.filter((r) => r.localAddress).map((r) => ({ ip: r.localAddress!, helo: r.heloName }));
    const results = await Promise.all(sources.map(async (src) => {
      const result = await spf({
        sender: `postmaster@${domain}`, ip: src.ip, helo: src.helo, mta: 'dkim-relay-doctor',
        resolver: mailauthResolver(ctx.resolver), maxElapsedTime: ctx.spfTimeLimitMs,
      } as Parameters<typeof spf>[0]);
      return { ip: src.ip, mechanism: `${net.isIPv6(src.ip) ? 'ip6' : 'ip4'}:${src.ip}`, status: result.status.result as string, comment: result.status.comment as string | undefined };
    }));
    const missing = results.filter((r) => r.status !== 'pass' && r.status !== 'temperror' && r.status !== 'permerror');
    const fix = txtRecordLine(domain, missing.reduceRight((rec, r) => withMechanism(rec, r.mechanism), record));
    const temp = results.find((r) => r.status === 'temperror');
    const perm = results.find((r) => r.status === 'permerror');
    if (results.every((r) => r.status === 'pass')) {
      checks.push(check('spf.authorizes-relay', 'pass', `SPF of ${domain} authorizes ${results.map((r) => r.ip).join(' and ')} (result pass)`));
    } else if (perm) {
      checks.push(check('spf.authorizes-relay', 'fail', `SPF of ${domain} is broken for every receiver (permerror: ${(perm.comment ?? '').replace(/^[^:]*: /, '')})`, txtRecordLine(domain, withMechanism(record, mechanism))));
    } else if (missing.length) {
      const which = missing.map((r) => `${r.ip} (result ${r.status})`).join(' and ');
      checks.push(check('spf.authorizes-relay', 'fail',
        `SPF of ${domain} does not authorize the relay's IP ${which}: Gmail answers 5.7.27, WEB.DE "Reject due to SPF policy"`, fix));
    } else if (temp) {
      checks.push(check('spf.authorizes-relay', 'error', `could not evaluate SPF of ${domain} for ${temp.ip}: ${temp.comment ?? 'DNS error'}`, DNS_FIX));
    }
  }

  const tree = await countSpfLookups(ctx.resolver, domain, record);
  const errorNote = tree.errors.length ? ` (some lookups failed: ${tree.errors.join(', ')}, so the count may be low)` : '';
  if (tree.lookups.length > SPF_LOOKUP_LIMIT) {
    checks.push(check('spf.lookup-limit', 'fail',
      `SPF of ${domain} needs ${tree.lookups.length} DNS lookups (${tree.lookups.join(', ')}); more than ${SPF_LOOKUP_LIMIT} is a permanent error for receivers that reach them (RFC 7208 4.6.4)${errorNote}`,
      `remove terms or replace a, mx and include terms by the ip4:/ip6: networks they stand for, down to ${SPF_LOOKUP_LIMIT} lookups${mechanism ? `; keep ${mechanism} first` : ''}`));
  } else {
    checks.push(check('spf.lookup-limit', tree.errors.length ? 'error' : 'pass',
      `SPF of ${domain} needs ${tree.lookups.length} DNS lookup${tree.lookups.length === 1 ? '' : 's'} (at most ${SPF_LOOKUP_LIMIT})${errorNote}`, tree.errors.length ? DNS_FIX : null));
  }
  if (tree.voids.length > SPF_VOID_LIMIT) {
    checks.push(check('spf.void-lookups', 'fail',
      `SPF of ${domain} has ${tree.voids.length} terms that find nothing in DNS (${tree.voids.join(', ')}); more than ${SPF_VOID_LIMIT} is a permanent error (RFC 7208 4.6.4)`,
      `remove the terms that point at names without records: ${tree.voids.join(', ')}`));
  } else {
    checks.push(check('spf.void-lookups', 'pass', `SPF of ${domain} has ${tree.voids.length} term${tree.voids.length === 1 ? '' : 's'} that find nothing in DNS (at most ${SPF_VOID_LIMIT})`));
  }

  const ptrTerms = terms(record).filter((t) => mechanismOf(t).name === 'ptr');
  if (tree.usesPtr) {
    const without = ['v=spf1', ...terms(record).filter((t) => mechanismOf(t).name !== 'ptr')].join(' ');
    checks.push(check('spf.ptr', 'warn',
      `SPF of ${domain} uses the ptr mechanism, which RFC 7208 5.5 says not to use: it is slow, and some receivers ignore it`,
      ptrTerms.length ? txtRecordLine(domain, mechanism ? withMechanism(without, mechanism) : without) : 'remove ptr from the included records, listing the addresses with ip4:/ip6: instead'));
  } else {
    checks.push(check('spf.ptr', 'pass', `SPF of ${domain} does not use ptr`));
  }

  const allTerm = terms(record).find((t) => mechanismOf(t).name === 'all');
  const hasRedirect = terms(record).some((t) => mechanismOf(t).name === 'redirect');
  if (allTerm && mechanismOf(allTerm).qualifier === '+') {
    const fixed = ['v=spf1', ...terms(record).map((t) => (t === allTerm ? '~all' : t))].join(' ');
    checks.push(check('spf.all', 'fail', `SPF of ${domain} ends in "${allTerm}", which authorizes every server on the internet to send as ${domain}`,
      txtRecordLine(domain, mechanism ? withMechanism(fixed, mechanism) : fixed)));
  } else if (allTerm && mechanismOf(allTerm).qualifier === '?') {
    const fixed = ['v=spf1', ...terms(record).map((t) => (t === allTerm ? '~all' : t))].join(' ');
    checks.push(check('spf.all', 'warn', `SPF of ${domain} ends in "?all" (neutral): it says nothing about other servers`, txtRecordLine(domain, fixed)));
  } else if (!allTerm && !hasRedirect) {
    checks.push(check('spf.all', 'warn', `SPF of ${domain} has no "all" term: other servers get "neutral"`, txtRecordLine(domain, `${record} ~all`)));
  } else {
    checks.push(check('spf.all', 'pass', allTerm ? `SPF of ${domain} ends in "${allTerm}"` : `SPF of ${domain} ends in a redirect`));
  }
  return checks;
}
