// Doctor checks of DMARC for a domain (RFC 9989, which obsoletes RFC 7489): a record at
// _dmarc.D (or, for a subdomain, the organizational domain's record that applies to it,
// found by mailauth's tree walk), its policy, aggregate reports (rua=), tags RFC 9989
// removed (pct, rf, ri), and alignment: the relay signs with d= the From domain.
import getDmarcRecord from 'mailauth/lib/dmarc/get-dmarc-record';
import { isNotFound } from '../dns/resolver';
import { storedKeys } from '../dkim/stored-keys';
import { check, Check, dnsError, txtRecordLine } from './check';
import { DoctorContext } from './context';
import { mailauthResolver } from './mailauth-resolver';

const DMARC_VERSION = /^v\s*=\s*DMARC1\s*(;|$)/;
const REMOVED_TAGS = ['pct', 'rf', 'ri'];

export function parseDmarcTags(record: string): [string, string][] {
  return record.split(';').map((p) => p.trim()).filter(Boolean).map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? [p.toLowerCase(), ''] : [p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim()];
  });
}

function formatTags(tags: [string, string][]): string {
  return tags.map(([k, v]) => `${k}=${v}`).join('; ');
}

export async function dmarcChecks(ctx: DoctorContext, domain: string): Promise<Check[]> {
  const name = `_dmarc.${domain}`;
  const reportAddress = `mailto:dmarc-reports@${domain}`;
  const notChecked = (why: string) => ['dmarc.policy', 'dmarc.rua', 'dmarc.removed-tags', 'dmarc.alignment']
    .map((id) => check(id, 'info', `not checked: ${why}`));

  let values: string[];
  try {
    values = await ctx.resolver.txt(name);
  } catch (err) {
    if (!isNotFound(err)) return [dnsError('dmarc.record', `TXT ${name}`, err), ...notChecked('the DMARC record could not be read (dmarc.record)')];
    values = [];
  }
  const records = values.map((v) => v.trim()).filter((v) => DMARC_VERSION.test(v));
  const checks: Check[] = [];
  let record: string;
  let owner = name;
  if (records.length > 1) {
    return [
      check('dmarc.record', 'fail', `${name} has ${records.length} DMARC records: receivers then apply none (RFC 9989 4.10). Keep one`, txtRecordLine(name, records[0])),
      ...notChecked('there is more than one DMARC record (dmarc.record)'),
    ];
  }
  if (records.length === 1) {
    record = records[0];
    checks.push(check('dmarc.record', 'pass', `${name} has a DMARC record: "${record}"`));
  } else {
    // A subdomain without its own record gets its organizational domain's.
    let inherited: Awaited<ReturnType<typeof getDmarcRecord>> = false;
    try {
      inherited = await getDmarcRecord(domain, mailauthResolver(ctx.resolver));
    } catch (err) {
      return [dnsError('dmarc.record', `the DMARC records above ${domain}`, err), ...notChecked('the DMARC record could not be read (dmarc.record)')];
    }
    if (!inherited || !inherited.isOrgRecord) {
      return [
        check('dmarc.record', 'fail',
          `${domain} has no DMARC record (${name}): Gmail and Yahoo require one of bulk senders (Gmail 4.7.31), Outlook of senders of more than 5000 a day; start with p=none and reports`,
          txtRecordLine(name, `v=DMARC1; p=none; rua=${reportAddress}`)),
        ...notChecked('there is no DMARC record (dmarc.record)'),
      ];
    }
    record = inherited.rr;
    owner = `_dmarc.${inherited.recordDomain}`;
    checks.push(check('dmarc.record', 'pass', `${domain} has no record of its own; the DMARC record of ${inherited.recordDomain} applies to it: "${record}"`));
  }

  const tags = parseDmarcTags(record);
  const tag = (k: string) => tags.find(([n]) => n === k)?.[1];
  const inheritedRecord = owner !== name;
  const policyTag = inheritedRecord && tag('sp') ? 'sp' : 'p';
  const policy = tag(policyTag)?.toLowerCase();
  const withTag = (k: string, v: string) => formatTags(tags.some(([n]) => n === k) ? tags.map(([n, x]) => [n, n === k ? v : x]) : [...tags, [k, v]]);

  if (policy === 'quarantine' || policy === 'reject') {
    checks.push(check('dmarc.policy', 'pass', `the DMARC policy is ${policyTag}=${policy}`));
  } else if (policy === 'none') {
    checks.push(check('dmarc.policy', 'pass',
      `the DMARC policy is ${policyTag}=none, which the providers accept; once the reports show all mail of ${domain} passing, move to p=quarantine, then p=reject, so nobody else can send as ${domain}`));
  } else {
    checks.push(check('dmarc.policy', 'warn',
      policy === undefined ? 'the DMARC record has no p= tag: receivers apply no policy (p=none at best, when rua= is set)' : `the DMARC record has p=${policy}, which is not none, quarantine or reject`,
      txtRecordLine(owner, withTag('p', 'none'))));
  }

  const rua = tag('rua');
  if (rua && /^[a-z][a-z0-9+.-]*:/i.test(rua)) checks.push(check('dmarc.rua', 'pass', `aggregate reports go to ${rua}`));
  else {
    checks.push(check('dmarc.rua', 'warn', 'the DMARC record asks for no aggregate reports (rua=): you cannot see who sends as the domain, or whether your mail passes, before tightening the policy',
      txtRecordLine(owner, withTag('rua', reportAddress))));
  }

  const removed = tags.filter(([n]) => REMOVED_TAGS.includes(n)).map(([n]) => n);
  if (removed.length) {
    checks.push(check('dmarc.removed-tags', 'warn', `the DMARC record uses ${removed.join(', ')}, removed by RFC 9989: receivers ignore ${removed.length === 1 ? 'it' : 'them'}`,
      txtRecordLine(owner, formatTags(tags.filter(([n]) => !REMOVED_TAGS.includes(n))))));
  } else {
    checks.push(check('dmarc.removed-tags', 'pass', 'the DMARC record uses no tag removed by RFC 9989 (pct, rf, ri)'));
  }

  const active = storedKeys(ctx.config.keysDir, domain).some((k) => k.state === 'active' && k.algorithm === 'rsa' && !k.problem);
  const adkim = tag('adkim')?.toLowerCase() === 's' ? 'strict' : 'relaxed';
  if (active) {
    checks.push(check('dmarc.alignment', 'pass',
      `the relay signs mail with From: ...@${domain} with d=${domain}, so DKIM is aligned (adkim ${adkim}); SPF aligns only when the envelope sender's domain is ${domain} too, which DKIM makes unnecessary`));
  } else {
    checks.push(check('dmarc.alignment', 'info', `not checked: no active DKIM key signs ${domain} (dkim.keys)`));
  }
  return checks;
}
