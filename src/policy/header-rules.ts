// Message sanity, checked on the header section before anything is signed: the rules Gmail,
// Yahoo and GMX enforce on what they receive (RFC 5322 3.6: one From, at most one of Date,
// Subject, Message-ID...), so a message they would refuse is refused here, while the client
// is still there to hear why.
import addressparser from 'nodemailer/lib/addressparser';
import type { HeaderField as ParsedHeader } from '../dkim/header-fields';
import { Rejection } from './rejection';

/** Fields RFC 5322 section 3.6 allows at most once. */
const SINGLE_FIELDS = ['from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'subject', 'date', 'message-id', 'in-reply-to', 'references'];

export interface HeaderFacts {
  fromAddress: string;
  fromDomain: string;
  hasDate: boolean;
  hasMessageId: boolean;
}

export function headerValue(header: ParsedHeader): string {
  const line = header.line.toString('latin1');
  return line.slice(line.indexOf(':') + 1).replace(/\r?\n/g, '').trim();
}

/**
 * Every line of the header section is a field ("Name: value") or the continuation of one
 * (starts with a space or tab). A stray line would otherwise be read as part of the field
 * above it by some parsers and as the start of the body by others.
 */
export function checkFieldSyntax(section: Buffer): void {
  const lines = section.toString('latin1').split('\r\n');
  lines.forEach((line, index) => {
    if (line === '' && index === lines.length - 1) return;
    const continuation = line.startsWith(' ') || line.startsWith('\t');
    if (continuation && index > 0) return;
    if (!/^[\x21-\x39\x3b-\x7e]+[ \t]*:/.test(line)) {
      const shown = line.slice(0, 40).replace(/[^\x20-\x7e]/g, '?');
      throw new Rejection(550, '5.6.0', `header line ${index + 1} ("${shown}") is not a header field: it has no "Name:" before its value`);
    }
  });
}

export function checkHeaders(headers: ParsedHeader[]): HeaderFacts {
  const counts = new Map<string, number>();
  headers.forEach((header, index) => {
    if (!header.key || !header.line.includes(0x3a /* : */)) {
      const shown = header.line.toString('latin1').slice(0, 40).replace(/[^\x20-\x7e]/g, '?');
      throw new Rejection(550, '5.6.0', `header line ${index + 1} ("${shown}") is not a header field: it has no colon`);
    }
    counts.set(header.key, (counts.get(header.key) ?? 0) + 1);
  });
  for (const field of SINGLE_FIELDS) {
    const n = counts.get(field) ?? 0;
    if (n > 1) {
      throw new Rejection(550, '5.6.0', `the message has ${n} ${canonicalName(field)} headers; RFC 5322 allows one, and Gmail and Yahoo refuse such mail`);
    }
  }
  const from = headers.find((h) => h.key === 'from');
  if (!from) throw new Rejection(550, '5.6.0', 'the message has no From header; add one naming the sender');
  const mailboxes = addressparser(headerValue(from), { flatten: true }) as { address?: string }[];
  const addresses = mailboxes.map((m) => m.address ?? '').filter(Boolean);
  if (addresses.length !== 1 || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(addresses[0])) {
    throw new Rejection(550, '5.6.0', `the From header must name exactly one address (user@domain), found: ${JSON.stringify(headerValue(from).slice(0, 100))}`);
  }
  const fromAddress = addresses[0];
  return {
    fromAddress,
    fromDomain: fromAddress.slice(fromAddress.lastIndexOf('@') + 1).toLowerCase().replace(/\.$/, ''),
    hasDate: counts.has('date'),
    hasMessageId: counts.has('message-id'),
  };
}

function canonicalName(field: string): string {
  return field === 'message-id' ? 'Message-ID' : field.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** RFC 5322 date-time in UTC, e.g. "Sat, 28 Nov 2026 02:00:00 +0000". */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}
