// The one strict reading of From, Sender, Resent-From and Resent-Sender (RFC 5322 3.4 with
// RFC 6532's UTF-8), used by the sender check and by the signer's choice of d=.
//
// Why strict: the relay signs with d= = the From domain, so a From that this parser reads as
// alice@example.test while a mail client or a verifier reads x@other.test would get
// other.test's mail signed with example.test's key (the parser-differential spoofs of
// "Composition Kills", Chen et al., USENIX Security 2020). So only the plain, current grammar
// is read: a mailbox is `addr-spec` or `[phrase] <addr-spec>`, with comments and white space
// around its parts but never inside the address. Everything else (obsolete syntax, groups,
// several mailboxes, an unclosed bracket, an @ in an unquoted name, encoded words or
// literals in the domain, control and invisible characters, invalid UTF-8) is an error
// with a reason, never a guess. What is accepted is read the same way by Python's
// email.headerregistry (test/security/from-differential.test.ts checks that).
//
// The display text (the name, quoted strings and comments, with RFC 2047 encoded words
// decoded and the text NFKC-normalized, so a fullwidth ＠ is an @) is returned apart, so the
// policy can refuse a display name that shows another domain's address.

/** One mailbox of an address field. */
export interface Mailbox {
  localPart: string;
  /** As written (letters, digits, hyphens and dots); compare in lower case. */
  domain: string;
  /** Every piece of text a reader may see besides the address: name, quoted strings, comments; encoded words decoded; NFKC. */
  displayText: string;
}

/** Longer author fields are refused outright: no real From comes near (and none needs parsing at length). */
export const MAX_FIELD_OCTETS = 4096;

/**
 * Why a field is not exactly what the strict grammar allows. No stack trace: the parser throws
 * one on the happy path too (a "Name <addr>" first tried as a bare addr-spec), and capturing a
 * stack there cost more than parsing the whole field.
 */
export class AddressSyntaxError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}

const ATEXT_ASCII = new Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~");
/** Control, format (zero-width, bidi) and separator characters, but space and tab. */
const FORBIDDEN = /(?![ \t])[\p{Cc}\p{Cf}\p{Z}]/u;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const ENCODED_WORD = /=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=/g;

const isAtext = (c: string) => c.length > 0 && (c.charCodeAt(0) > 0x7f || ATEXT_ASCII.has(c));

/**
 * The field's value (everything after the colon, folds included) as text: valid UTF-8,
 * unfolded, without control or invisible characters.
 */
export function fieldText(value: Buffer): string {
  if (value.length > MAX_FIELD_OCTETS) throw new AddressSyntaxError(`it is ${value.length} octets long (at most ${MAX_FIELD_OCTETS})`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(value);
  } catch {
    const bad = [...value].find((b) => b > 0x7f) ?? 0;
    throw new AddressSyntaxError(`it is not valid UTF-8 (byte 0x${bad.toString(16).toUpperCase()}); write non-ASCII text as UTF-8 (RFC 6532) or as an encoded word (RFC 2047)`);
  }
  text = text.replace(/\r\n(?=[ \t])/g, '');
  const forbidden = FORBIDDEN.exec(text);
  if (forbidden) {
    const cp = forbidden[0].codePointAt(0) as number;
    const name = cp === 0x0d || cp === 0x0a ? 'a line break that does not continue the field' : `the character U+${cp.toString(16).toUpperCase().padStart(4, '0')} (a control character, an invisible one or a space other than U+0020)`;
    throw new AddressSyntaxError(`it contains ${name}`);
  }
  return text;
}

/** Decodes RFC 2047 encoded words wherever they stand (as lenient readers do), for the display check. */
export function decodeEncodedWords(text: string): string {
  return text.replace(/(=\?[^?\s]+\?[QqBb]\?[^?\s]*\?=)\s+(?==\?)/g, '$1').replace(ENCODED_WORD, (whole, charset: string, encoding: string, data: string) => {
    const bytes = encoding.toUpperCase() === 'B'
      ? Buffer.from(data, 'base64')
      : Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1');
    try {
      return new TextDecoder(charset.replace(/\*.*$/, '').toLowerCase()).decode(bytes);
    } catch {
      return bytes.toString('latin1'); // an unknown charset: its ASCII still shows
    }
  });
}

class Reader {
  pos = 0;
  display: string[] = [];
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  /** White space and comments; comment text counts as display text. Returns whether any was there. */
  skipCfws(): boolean {
    const start = this.pos;
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t') this.pos++;
      else if (c === '(') this.display.push(this.comment());
      else return this.pos > start;
    }
  }

  private comment(): string {
    let depth = 0;
    let out = '';
    do {
      const c = this.peek();
      if (c === '') throw new AddressSyntaxError('it has a comment "(" that is never closed');
      this.pos++;
      if (c === '(') depth++;
      else if (c === ')') depth--;
      else if (c === '\\') out += this.quotedPair();
      else out += c;
    } while (depth > 0);
    return out;
  }

  private quotedPair(): string {
    const c = this.peek();
    if (c === '') throw new AddressSyntaxError('it ends with a lone backslash');
    this.pos++;
    return c;
  }

  quotedString(): string {
    this.pos++; // the opening quote
    let out = '';
    for (;;) {
      const c = this.peek();
      if (c === '') throw new AddressSyntaxError('it has a quoted string that is never closed');
      this.pos++;
      if (c === '"') return out;
      out += c === '\\' ? this.quotedPair() : c;
    }
  }

  /** 1*atext, dots allowed inside when `dots` (a dot-atom, or a name like "John Q. Public"). */
  atom(dots: boolean): string {
    const start = this.pos;
    while (isAtext(this.peek()) || (dots && this.peek() === '.')) this.pos++;
    return this.text.slice(start, this.pos);
  }
}

/** An addr-spec at the reader's position: local-part "@" domain, nothing between the parts. */
function addrSpec(r: Reader): { localPart: string; domain: string } {
  let localPart: string;
  if (r.peek() === '"') {
    localPart = r.quotedString();
    if (localPart.includes('@')) throw new AddressSyntaxError('its local part is a quoted string with an @ in it, which mail clients may show as an address');
  } else {
    localPart = r.atom(true);
    if (!localPart) throw new AddressSyntaxError(`it has no address where one is expected (found ${describe(r)})`);
    if (localPart.startsWith('.') || localPart.endsWith('.') || localPart.includes('..')) {
      throw new AddressSyntaxError(`its local part "${localPart}" has a dot at its start or end, or two in a row (obsolete syntax)`);
    }
  }
  const encodedWordStart = localPart.indexOf('=?');
  if (encodedWordStart !== -1 && localPart.indexOf('?=', encodedWordStart + 2) !== -1) {
    throw new AddressSyntaxError('its address contains an encoded word (=?...?=), which some readers decode into another address');
  }
  if (r.peek() !== '@') {
    throw new AddressSyntaxError(r.peek() === ' ' || r.peek() === '\t' || r.peek() === '(' ? 'it has white space or a comment inside the address' : `it has no @domain after "${localPart}" (found ${describe(r)})`);
  }
  r.pos++;
  if (r.peek() === '[') throw new AddressSyntaxError('its domain is an address literal ([...]), which cannot be a signing domain; use a domain name');
  const start = r.pos;
  while (r.pos < r.text.length && /[^\s()<>[\]:;@\\,"]/.test(r.peek())) r.pos++;
  const domain = r.text.slice(start, r.pos);
  if (!domain) throw new AddressSyntaxError(r.peek() === ' ' || r.peek() === '\t' || r.peek() === '(' ? 'it has white space or a comment inside the address' : 'it has no domain after the @');
  const labels = domain.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || domain.length > 253) {
    throw new AddressSyntaxError(`its domain "${domain}" is not a domain name (labels of ASCII letters, digits and hyphens, separated by dots; write an internationalized domain in its xn-- form)`);
  }
  return { localPart, domain };
}

function describe(r: Reader): string {
  const c = r.peek();
  return c === '' ? 'the end of the field' : `"${c}" at character ${r.pos + 1}`;
}

/** One mailbox at the reader's position, with the CFWS around it. */
function mailbox(r: Reader): Mailbox {
  r.display = [];
  r.skipCfws();
  const start = r.pos;
  const shown = r.display.length;
  // A bare addr-spec, when what stands here reads as one up to the end of the mailbox.
  if (r.peek() !== '<') {
    try {
      const spec = addrSpec(r);
      r.skipCfws();
      if (r.done || r.peek() === ',') return { ...spec, displayText: displayOf(r.display) };
    } catch (err) {
      if (!(err instanceof AddressSyntaxError)) throw err;
    }
    r.pos = start;
    r.display.length = shown;
  }
  // [phrase] "<" addr-spec ">": the phrase is words (atoms, "John Q. Public" dots, quoted strings).
  const comments = r.display.length;
  const words: string[] = [];
  let dotBeforeBracket = false;
  for (;;) {
    if (r.peek() === '"') words.push(r.quotedString());
    else {
      if (r.peek() === '.' && !words.length) throw new AddressSyntaxError('its display name starts with a dot');
      const atom = r.atom(true);
      if (!atom) break;
      words.push(atom);
    }
    // "John Q.<a@b>" is read differently by different parsers (Python fails on it).
    dotBeforeBracket = !r.skipCfws() && words[words.length - 1].endsWith('.');
  }
  if (dotBeforeBracket && r.peek() === '<') {
    throw new AddressSyntaxError('its display name ends with a dot right before "<" (put the name in double quotes, or a space before "<")');
  }
  r.display = [...r.display.slice(0, comments), ...words, ...r.display.slice(comments)];
  if (r.peek() !== '<') {
    const c = r.peek();
    if (c === '@') throw new AddressSyntaxError('it has an @ in an unquoted display name (write the name in double quotes, or only the address)');
    if (c === ':') throw new AddressSyntaxError('it uses group syntax ("name: ...;"), which names no single sender');
    if (c === '') throw new AddressSyntaxError(words.length ? 'it has a display name but no <address>' : 'it names no address');
    throw new AddressSyntaxError(`it has ${describe(r)} where a name or <address> is expected`);
  }
  r.pos++;
  const spec = addrSpec(r);
  if (r.peek() !== '>') {
    throw new AddressSyntaxError(r.peek() === '' ? 'it has a "<" that is never closed' : `it has ${describe(r)} inside <...> after the address`);
  }
  r.pos++;
  r.skipCfws();
  return { ...spec, displayText: displayOf(r.display) };
}

function displayOf(parts: string[]): string {
  return decodeEncodedWords(parts.join(' ')).normalize('NFKC');
}

/** The mailboxes of an address field's value (mailbox-list: one or more, comma separated). */
export function parseMailboxList(value: Buffer): Mailbox[] {
  const r = new Reader(fieldText(value));
  const list: Mailbox[] = [];
  for (;;) {
    list.push(mailbox(r));
    if (r.done) return list;
    if (r.peek() !== ',') {
      throw new AddressSyntaxError(r.peek() === '<' || r.peek() === '>' ? `it has ${describe(r)} outside a single <address>` : `it has ${describe(r)} after the address`);
    }
    r.pos++;
  }
}

/** Addresses (or @domains) shown in a display text: the domain after each @ that a name or an address could be read from. */
export function domainsShownIn(displayText: string): string[] {
  const found: string[] = [];
  for (const m of displayText.matchAll(/@([^\s@<>()[\]"',;:\\]+)/g)) {
    const domain = m[1].replace(/\.+$/, '').toLowerCase();
    if (domain) found.push(domain);
  }
  return found;
}
