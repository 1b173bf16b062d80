// The report itself (RFC 8460 section 4): one JSON object per domain and period, with a
// policies[] entry per policy the relay applied to that domain's MX hosts, each with its
// summary counts and failure details. Field names and shapes follow RFC 8460 4.3 and 4.4.
import zlib from 'node:zlib';
import { DomainRecord, Period } from './collector';

export interface ReportIdentity {
  /** organization-name (tlsrpt.org, default the HELO name). */
  org: string;
  /** contact-info (tlsrpt.contact, default postmaster@HELO). */
  contact: string;
  /** The relay's HELO name: part of the report id and the file name. */
  submitter: string;
}

export interface TlsReport {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: {
    policy: { 'policy-type': string; 'policy-string'?: string[]; 'policy-domain': string; 'mx-host'?: string[] };
    summary: { 'total-successful-session-count': number; 'total-failure-session-count': number };
    'failure-details'?: {
      'result-type': string;
      'sending-mta-ip'?: string;
      'receiving-mx-hostname'?: string;
      'receiving-ip'?: string;
      'failed-session-count': number;
      'failure-reason-code'?: string;
    }[];
  }[];
}

/** RFC 3339 in UTC without fractions: 2026-12-03T00:00:00Z. */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The report id: the same for the same domain, period and relay, so a report sent twice
 * (a crash between queueing it and noting that) is recognized as one by its receiver.
 */
export function reportId(period: Period, domain: string, submitter: string): string {
  return `${rfc3339(period.start)}_${domain}@${submitter}`;
}

export function buildReport(period: Period, domain: string, record: DomainRecord, who: ReportIdentity): TlsReport {
  return {
    'organization-name': who.org,
    'date-range': { 'start-datetime': rfc3339(period.start), 'end-datetime': rfc3339(period.end) },
    'contact-info': who.contact,
    'report-id': reportId(period, domain, who.submitter),
    policies: record.policies.map((p) => ({
      policy: {
        'policy-type': p.policy.type,
        ...(p.policy.string?.length ? { 'policy-string': p.policy.string } : {}),
        // no-policy-found and sts: the recipient domain; tlsa: the MX host (RFC 8460 4.4)
        'policy-domain': p.policy.domain || domain,
        ...(p.policy.mxHost?.length ? { 'mx-host': p.policy.mxHost } : {}),
      },
      summary: { 'total-successful-session-count': p.success, 'total-failure-session-count': p.failure },
      ...(p.details.length ? {
        'failure-details': p.details.map((d) => ({
          'result-type': d.result,
          ...(d.sendingIp ? { 'sending-mta-ip': d.sendingIp } : {}),
          'receiving-mx-hostname': d.mxHost,
          'receiving-ip': d.receivingIp,
          'failed-session-count': d.count,
          ...(d.reason ? { 'failure-reason-code': d.reason } : {}),
        })),
      } : {}),
    })),
  };
}

export function gzipReport(report: TlsReport): Buffer {
  return zlib.gzipSync(Buffer.from(JSON.stringify(report)));
}

/**
 * RFC 8460 5.3's file name: sender "!" policy-domain "!" begin "!" end "." extension, the
 * times in seconds since the epoch.
 */
export function reportFileName(period: Period, domain: string, submitter: string): string {
  return `${submitter}!${domain}!${Math.floor(period.start / 1000)}!${Math.floor(period.end / 1000)}.json.gz`;
}
