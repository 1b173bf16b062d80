// What every doctor check returns, and the few helpers the check groups share. A check is a
// function of the DNS it reads; it says what it found (`detail`) and, unless it passes, the
// exact zone-file line or setting that fixes it (`fix`). A DNS failure is `error` ("could not
// tell"), never `fail`; `info` is advice DNS cannot check, or a check that waits for another.
import { describeDnsError } from '../dns/resolver';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'error' | 'info';
export const CHECK_STATUSES: readonly CheckStatus[] = ['pass', 'warn', 'fail', 'error', 'info'];

export interface Check {
  id: string;
  status: CheckStatus;
  detail: string;
  fix: string | null;
}

/** A check in the report: `domain` is null for the relay's own identity (its IP and HELO). */
export interface DoctorCheck extends Check {
  domain: string | null;
}

export function check(id: string, status: CheckStatus, detail: string, fix: string | null = null): Check {
  return { id, status, detail, fix };
}

export const DNS_FIX = 'check dns.servers (env RELAY_DNS_SERVERS) and dns.timeout (env RELAY_DNS_TIMEOUT), then run dkim-relay doctor again';

/** The `error` result of a lookup that failed for another reason than "no such record". */
export function dnsError(id: string, what: string, err: unknown): Check {
  return check(id, 'error', `could not look up ${what}: ${describeDnsError(err)}`, DNS_FIX);
}

/** A TXT record as one zone-file line, the value cut into quoted strings of at most 255 characters. */
export function txtRecordLine(name: string, value: string, ttl = 3600): string {
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += 255) strings.push(`"${value.slice(i, i + 255).replace(/[\\"]/g, (c) => `\\${c}`)}"`);
  if (!strings.length) strings.push('""');
  return `${name}. ${ttl} IN TXT ${strings.length > 1 ? `( ${strings.join(' ')} )` : strings[0]}`;
}
