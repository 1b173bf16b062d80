// The Received trace field the relay puts on top of every message it accepts (RFC 5321 4.4):
//   Received: from <EHLO name> ([client address])
//           by <relay host name> with ESMTPSA (TLSv1.3 TLS_AES_256_GCM_SHA384)
//           id <queue ID> for <recipient>; <date>
// "with" is the protocol as RFC 3848 names it (ESMTP, S with TLS, A with AUTH). The field is
// not signed (a trace field is not in the signer's list): it sits above the signed fields and
// later hops add theirs above it, so the signature is unaffected either way.
// Nothing the client sends goes in unchecked: the EHLO name is kept as given (RFC 5321 wants
// it there, even when it is not a real name) but reduced to printable ASCII without the
// characters that would end a token, a comment or the field ("();\ and CR/LF), and cut short.
import { rfc5322Date } from '../policy/header-rules';

export interface ReceivedInfo {
  /** The EHLO/HELO name as the client gave it ('' when none). */
  heloName: string;
  /** The client's IP address. */
  clientAddress: string;
  /** RFC 3848 protocol: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA. */
  protocol: string;
  tls?: { version: string; cipher: string };
  /** Leave the client's address and name out (submission.hideClient). */
  hideClient: boolean;
}

const MAX_HELO = 100;

/** The EHLO name made safe for a header field: printable ASCII, no delimiters, bounded. */
export function sanitizeHeloName(name: string): string {
  const clean = name.replace(/[^\x21-\x7e]|[()\\;"]/g, '?');
  return clean.length > MAX_HELO ? `${clean.slice(0, MAX_HELO)}...` : clean || 'unknown';
}

/** A protocol name from RFC 3848's list; anything else is reported as plain SMTP. */
function protocolName(protocol: string): string {
  return /^(E?SMTP|ESMTPS|ESMTPA|ESMTPSA|SMTPS?A?)$/.test(protocol) ? protocol : 'SMTP';
}

function tcpInfo(address: string): string {
  const ip = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  return ip.includes(':') ? `[IPv6:${ip}]` : `[${ip}]`;
}

/**
 * The whole field, folded, CRLF-terminated. id: the queue ID; for: the recipient, given only
 * when there is exactly one (RFC 5321 7.2: more would disclose the other recipients).
 */
export function receivedField(info: ReceivedInfo, by: string, opts: { id?: string; recipients: string[]; date?: Date }): string {
  const lines: string[] = [];
  if (!info.hideClient) lines.push(`from ${sanitizeHeloName(info.heloName)} (${tcpInfo(info.clientAddress)})`);
  const tls = info.tls ? ` (${sanitizeHeloName(info.tls.version)} ${sanitizeHeloName(info.tls.cipher)})` : '';
  lines.push(`by ${by} (dkim-relay) with ${protocolName(info.protocol)}${tls}`);
  let last = opts.id ? `id ${opts.id}` : '';
  const single = opts.recipients.length === 1 ? opts.recipients[0] : '';
  // A recipient that could break the field (it came through smtp-server's parser, but the
  // header is no place to trust that) is left out rather than mangled.
  if (single && /^[^\s<>()\\;"]+$/.test(single)) last += `${last ? ' ' : ''}for <${single}>`;
  const date = rfc5322Date(opts.date ?? new Date());
  if (last) lines.push(`${last};`);
  else lines[lines.length - 1] += ';';
  lines.push(date);
  return `Received: ${lines.join('\r\n\t')}\r\n`;
}
