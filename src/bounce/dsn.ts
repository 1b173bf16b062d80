// The text of a delivery status notification (RFC 3464): a multipart/report with a part for
// people, the machine-readable message/delivery-status (one block per recipient), and the
// original message's header section as text/rfc822-headers. It is sent from MAILER-DAEMON at
// the HELO name with the null sender, so nothing ever answers it with another bounce.
import crypto from 'node:crypto';
import { enhancedStatus, verdictOf } from '../replies/verdict';
import { rfc5322Date } from '../policy/header-rules';

export interface DsnRecipient {
  address: string;
  action: 'failed' | 'delayed';
  /** The last SMTP reply or the reason (no route, expired...). */
  reply: string;
  remoteHost?: string;
  lastAttemptAt?: number;
  /** The recipient was given up because the retry time ran out. */
  expired?: boolean;
}

export interface DsnInput {
  kind: 'failed' | 'delayed';
  /** The relay's HELO name: Reporting-MTA, and the From domain. */
  reportingMta: string;
  /** The envelope sender of the original message: the DSN goes there. */
  to: string;
  queueId: string;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  /** The original header section, CRLF line endings. */
  originalHeaders: Buffer;
  now?: Date;
  /** For a delay notice: until when the relay keeps trying. */
  expiresAt?: Date;
}

/** The enhanced status of a recipient: from its reply, else a fitting generic one. */
export function statusOf(r: DsnRecipient): string {
  const fromReply = enhancedStatus(r.reply)
    ?? (/null MX/.test(r.reply) ? '5.1.10' : /does not exist \(NXDOMAIN\)/.test(r.reply) ? '5.1.2' : undefined);
  if (r.action === 'delayed') return fromReply?.startsWith('4.') ? fromReply : '4.0.0';
  if (fromReply?.startsWith('5.')) return fromReply;
  if (r.expired) return fromReply?.startsWith('4.') ? fromReply : '4.4.7'; // delivery time expired
  return fromReply ?? '5.0.0';
}

/** Header field values must stay on one line of printable ASCII. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/[^\x20-\x7e]/g, '?').slice(0, 900);
}

export function buildDsn(input: DsnInput): { header: Buffer; body: Buffer } {
  const now = input.now ?? new Date();
  const boundary = `dsn-${crypto.randomBytes(12).toString('hex')}`;
  const failed = input.kind === 'failed';
  const subject = failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)';

  const header = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${input.to}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${input.queueId}.${crypto.randomBytes(6).toString('hex')}.dsn@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    'Content-Transfer-Encoding: 7bit',
    '',
    '',
  ].join('\r\n');

  const human: string[] = failed
    ? [
      `This is the mail system at ${input.reportingMta}.`,
      '',
      'Your message could not be delivered to one or more recipients. It is attached',
      'below (its header only). The recipients and the reasons:',
    ]
    : [
      `This is the mail system at ${input.reportingMta}.`,
      '',
      'Your message could not be delivered yet to the recipients below. This is only a',
      'warning: no action is needed, the mail system keeps trying',
      ...(input.expiresAt ? [`until ${rfc5322Date(input.expiresAt)}.`] : ['for a while.']),
      'The recipients and the last answer of their mail servers:',
    ];
  for (const r of input.recipients) {
    human.push('', `<${oneLine(r.address)}>: ${oneLine(r.reply)}`);
    // What the reply means and what to do, in plain words (replies/)
    const verdict = verdictOf(r.reply, r.remoteHost);
    human.push(`  What it means (${verdict.class}): ${oneLine(verdict.explanation)}`);
    if (verdict.fix) human.push(`  What to do: ${oneLine(verdict.fix)}`);
  }

  const perMessage = [
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-Queue-ID: ${input.queueId}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`,
  ];
  const perRecipient = input.recipients.map((r) => {
    const diagnostic = /^\d{3}[ -]/.test(r.reply) ? `smtp; ${oneLine(r.reply)}` : `X-dkim-relay; ${oneLine(r.reply)}`;
    return [
      `Final-Recipient: rfc822; ${oneLine(r.address)}`,
      `Action: ${r.action}`,
      `Status: ${statusOf(r)}`,
      ...(r.remoteHost ? [`Remote-MTA: dns; ${oneLine(r.remoteHost)}`] : []),
      `Diagnostic-Code: ${diagnostic}`,
      ...(r.lastAttemptAt ? [`Last-Attempt-Date: ${rfc5322Date(new Date(r.lastAttemptAt))}`] : []),
      ...(r.action === 'delayed' && input.expiresAt ? [`Will-Retry-Until: ${rfc5322Date(input.expiresAt)}`] : []),
    ].join('\r\n');
  });

  const original = input.originalHeaders.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/(\r\n)*$/, '\r\n');
  const body = [
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Description: Notification',
    '',
    ...human,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    'Content-Description: Delivery report',
    '',
    perMessage.join('\r\n'),
    '',
    perRecipient.join('\r\n\r\n'),
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    'Content-Description: Undelivered message headers',
    '',
    original.replace(/\r\n$/, ''),
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
  return { header: Buffer.from(header, 'latin1'), body: Buffer.from(body, 'latin1') };
}
