// Message sanity, checked on the header section before anything is signed: the rules Gmail,
// Yahoo and GMX enforce on what they receive (RFC 5322 3.6: one From, at most one of Date,
// Subject, Message-ID...), so a message they would refuse is refused here, while the client
// is still there to hear why.
import type { HeaderField as ParsedHeader } from '../dkim/header-fields';
import { AddressSyntaxError, Mailbox, parseMailboxList } from './from-header';
import { Rejection } from './rejection';

/** Fields RFC 5322 section 3.6 allows at most once. */
const SINGLE_FIELDS = ['from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'subject', 'date', 'message-id', 'in-reply-to', 'references'];

/** A mailbox of a field that names who wrote or sent the message. */
export interface AuthorMailbox {
  /** The field name as written in the message (From, Sender, Resent-From, Resent-Sender). */
  field: string;
  mailbox: Mailbox;
}

export interface HeaderFacts {
  fromAddress: string;
  fromDomain: string;
  /** The From mailbox first, then those of Sender, Resent-From and Resent-Sender. */
  authors: AuthorMailbox[];
  hasDate: boolean;
  hasMessageId: boolean;
}

/** Fields that name who wrote or sent the message, and how many mailboxes each may name. */
const AUTHOR_FIELDS: Record<string, 'one' | 'list'> = { from: 'one', sender: 'one', 'resent-from': 'list', 'resent-sender': 'one' };

export function headerValue(header: ParsedHeader): string {
  const line = header.line.toString('latin1');
  return line.slice(line.indexOf(':') + 1).replace(/\r?\n/g, '').trim();
}

/** The raw bytes after the colon, folds included. */
function rawValue(header: ParsedHeader): Buffer {
  return header.line.subarray(header.line.indexOf(0x3a /* : */) + 1);
}

/** The mailboxes of an author field, read strictly (src/policy/from-header.ts), or a 550 5.6.0 that says why not. */
function authorMailboxes(header: ParsedHeader, count: 'one' | 'list'): Mailbox[] {
  const name = canonicalName(header.key);
  const shown = JSON.stringify(headerValue(header).slice(0, 100));
  let list: Mailbox[];
  try {
    list = parseMailboxList(rawValue(header));
  } catch (err) {
    if (!(err instanceof AddressSyntaxError)) throw err;
    throw new Rejection(550, '5.6.0', printable(`the ${name} header must name exactly one mailbox, as "Name <user@domain>" or "user@domain", but ${err.message}: ${shown}`));
  }
  if (count === 'one' && list.length !== 1) {
    throw new Rejection(550, '5.6.0', `the ${name} header must name exactly one mailbox, as "Name <user@domain>" or "user@domain", but it names ${list.length}: ${shown}`);
  }
  return list;
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
    const shown = line.slice(0, 40).replace(/[^\x20-\x7e]/g, '?');
    if (/^[\x21-\x39\x3b-\x7e]+[ \t]+:/.test(line)) {
      // Obsolete syntax (RFC 5322 4.5): verifiers and mail clients differ on whether "From :" is a From.
      throw new Rejection(550, '5.6.0', `header line ${index + 1} ("${shown}") has white space between the field name and its colon; remove it`);
    }
    if (!/^[\x21-\x39\x3b-\x7e]+:/.test(line)) {
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
  const authors: AuthorMailbox[] = authorMailboxes(from, 'one').map((mailbox) => ({ field: 'From', mailbox }));
  for (const header of headers) {
    const count = AUTHOR_FIELDS[header.key];
    if (count && header !== from) {
      for (const mailbox of authorMailboxes(header, count)) authors.push({ field: canonicalName(header.key), mailbox });
    }
  }
  const { localPart, domain } = authors[0].mailbox;
  const fromAddress = `${localPart}@${domain}`;
  return {
    fromAddress,
    fromDomain: domain.toLowerCase(),
    authors,
    hasDate: counts.has('date'),
    hasMessageId: counts.has('message-id'),
  };
}

/** A reply text is ASCII on one line: anything else from the message is shown as "?". */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

function canonicalName(field: string): string {
  return field === 'message-id' ? 'Message-ID' : field.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** RFC 5322 date-time in UTC, e.g. "Sat, 28 Nov 2026 02:00:00 +0000". */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}
