// A TLS report as mail (RFC 8460 5.3): multipart/report; report-type="tlsrpt" with a short
// text and the gzipped JSON as application/tlsrpt+gzip, the Subject and the TLS-Report-Domain
// and TLS-Report-Submitter fields the RFC asks for, From the relay's MAILER-DAEMON like its
// bounces, DKIM-signed like them, and committed to the spool so the queue delivers (and
// retries) it like any message. The envelope sender is the null sender: a report that cannot
// be delivered is not bounced back to anyone. "TLS-Required: No" (RFC 8689) asks that the
// report get through even where the TLS policy it reports on fails (RFC 8460 5.3: reports
// MUST be delivered despite TLS failures), and the envelope is marked `tlsReport` so the
// relay does not count its delivery in the next report.
import crypto from 'node:crypto';
import { signAsRelay } from '../bounce/bounce';
import { KeyStore } from '../dkim/key-store';
import { rfc5322Date } from '../policy/header-rules';
import { Spool, SpoolEnvelope } from '../spool/spool';

export interface ReportMailInput {
  /** The relay's HELO name: the From domain and the submitter. */
  heloName: string;
  domain: string;
  reportId: string;
  recipients: string[];
  fileName: string;
  gzipped: Buffer;
  /** The text part's description of the period. */
  start: string;
  end: string;
  now?: Date;
}

export function buildReportMail(input: ReportMailInput): { header: Buffer; body: Buffer } {
  const boundary = `tlsrpt-${crypto.randomBytes(12).toString('hex')}`;
  const header = [
    `From: TLS Reporting <MAILER-DAEMON@${input.heloName}>`,
    `To: ${input.recipients.map((r) => `<${r}>`).join(', ')}`,
    `Subject: Report Domain: ${input.domain} Submitter: ${input.heloName} Report-ID: <${input.reportId}>`,
    `Date: ${rfc5322Date(input.now ?? new Date())}`,
    `Message-ID: <${crypto.randomBytes(12).toString('hex')}.tlsrpt@${input.heloName}>`,
    `TLS-Report-Domain: ${input.domain}`,
    `TLS-Report-Submitter: ${input.heloName}`,
    'Auto-Submitted: auto-generated',
    'TLS-Required: No',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    '',
    '',
  ].join('\r\n');
  const base64 = input.gzipped.toString('base64').replace(/.{76}/g, '$&\r\n').replace(/\r\n$/, '');
  const body = [
    'This is a multipart message in MIME format.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    `This is an aggregate TLS report (RFC 8460) from ${input.heloName} about the`,
    `connections it made to the mail servers of ${input.domain}`,
    `from ${input.start} to ${input.end}. The report is attached as gzipped JSON.`,
    '',
    `--${boundary}`,
    'Content-Type: application/tlsrpt+gzip',
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${input.fileName}"`,
    '',
    base64,
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
  return { header: Buffer.from(header, 'latin1'), body: Buffer.from(body, 'latin1') };
}

/** Signs the report and commits it to the spool; returns its envelope for the queue. */
export async function queueReportMail(input: ReportMailInput, ctx: { spool: Spool; keys: KeyStore }): Promise<SpoolEnvelope> {
  const { header, body } = buildReportMail(input);
  const { dkimSignatures, signing } = await signAsRelay(header, body, ctx.keys, input.heloName);
  const writer = ctx.spool.createWriter();
  try {
    await writer.write(header);
    await writer.write(body);
    const now = Date.now();
    return await writer.commit({
      receivedAt: new Date(now).toISOString(),
      sender: '',
      recipients: input.recipients.map((address) => ({ address, status: 'queued', attempts: 0, nextAttemptAt: now })),
      dkimSignatures,
      client: { address: 'local' },
      signing,
      tlsReport: true,
    });
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
