// The header side of DKIM signing: reading the header section into fields, the relaxed
// canonicalization of a field (RFC 6376 3.4.2), choosing the fields to sign (5.4) and writing
// the DKIM-Signature field (3.5). This used to come from mailauth's lib/tools.js and
// lib/dkim/header, but tools.js loads libmime, tldts, joi, punycode and node:https when it
// is required: about 25-30 MB of RSS in a relay that signs with none of them. The output is
// byte-for-byte what mailauth 7 produced (same parsing, same tag order, same folding), and
// python3-dkim and mailauth verify it: test/peers/verifiers-corpus.test.ts and
// test/unit/header-fields.test.ts. The body hash still comes from mailauth/lib/dkim/body,
// which loads nothing of the above.
import { domainToASCII } from 'node:url';

/** One field of a header section. */
export interface HeaderField {
  /** The field name in lower case (A-Z only); '' when the line has nothing before a colon. */
  key: string;
  /** The field name as written, without the whitespace (or fold) between it and the colon. */
  casedKey: string;
  /** The raw field, continuation lines included (joined by CRLF), without the final line break. */
  line: Buffer;
}

/** A field name (RFC 5322 3.6.8: printable US-ASCII but the colon), then maybe a fold, then the colon. */
const FIELD_START = /^[\x21-\x39\x3b-\x7e]+[ \t\r\n]*:/;
const UPPER = /[A-Z]/g;

/** Lower cases A-Z only: the header is read as latin1, and toLowerCase() would also map 0xC0-0xDE. */
function lowerAscii(s: string): string {
  return /[^\x00-\x7f]/.test(s) ? s.replace(UPPER, (c) => String.fromCharCode(c.charCodeAt(0) | 0x20)) : s.toLowerCase();
}

/** Strips spaces and tabs at both ends. */
function trimWsp(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 0x20 || s.charCodeAt(start) === 0x09)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 0x20 || s.charCodeAt(end - 1) === 0x09)) end--;
  return s.slice(start, end);
}

/**
 * The fields of a header section (without the blank line that ends it; CRLF or LF line
 * endings). A line that does not open a field (name, colon) is part of the field above it,
 * whatever it starts with: reading such a line into the field above can only turn a
 * signature that would pass into one that fails, never the other way round. Only the first
 * line cannot join anything, so it may come out as a field without a colon (or with an
 * empty key), which the policy refuses (src/policy/header-rules.ts). A name may be folded
 * away from its colon ("From\r\n : x"): the line after the name then counts with it.
 */
export function parseHeaderFields(section: Buffer): HeaderField[] {
  const text = section.toString('latin1').replace(/[\r\n]+$/, '');
  if (!text) return [];
  const lines = text.split(/\r?\n/);
  // Bottom-up, as a line's continuation decides whether a name-only line opens a field.
  const opens: boolean[] = new Array<boolean>(lines.length);
  opens[0] = true;
  for (let i = lines.length - 1; i > 0; i--) {
    opens[i] = FIELD_START.test(lines[i]) || (i + 1 < lines.length && !opens[i + 1] && FIELD_START.test(`${lines[i]}\r\n${lines[i + 1]}`));
  }
  const fields: HeaderField[] = [];
  for (let i = 0; i < lines.length;) {
    let end = i + 1;
    while (end < lines.length && !opens[end]) end++;
    const raw = end === i + 1 ? lines[i] : lines.slice(i, end).join('\r\n');
    const colon = raw.indexOf(':');
    const name = colon < 0 ? raw : raw.slice(0, colon);
    const casedKey = name ? trimWsp(name.replace(/\r?\n/g, '')) : '';
    fields.push({ key: lowerAscii(casedKey), casedKey, line: Buffer.from(raw, 'latin1') });
    i = end;
  }
  return fields;
}

/**
 * The relaxed canonicalization of one field (RFC 6376 3.4.2), as a latin1 string without
 * the CRLF that follows it in the hash: unfolded, the name in lower case, no whitespace
 * around the colon, each run of spaces and tabs one space, none at the end of the value.
 */
export function relaxedField(line: Buffer | string): string {
  const text = (typeof line === 'string' ? line : line.toString('latin1')).replace(/\r?\n/g, '');
  const colon = text.indexOf(':');
  let out = colon < 0 ? text : `${trimWsp(lowerAscii(text.slice(0, colon)))}:${text.slice(colon + 1).replace(/^[ \t]+/, '')}`;
  out = out.replace(/[ \t]+/g, ' ');
  if (out.startsWith(' ')) out = out.slice(1);
  if (out.endsWith(' ')) out = out.slice(0, -1);
  return out;
}

export interface SignedFields {
  /** The fields that are signed, bottom-up: the order of h= and of the hash. */
  fields: HeaderField[];
  /** The h= list: the names of `fields` as written, then the oversigned names once more. */
  names: string[];
}

/**
 * Which fields to sign (RFC 6376 5.4): every field named in `sign` (any case), each instance,
 * from the bottom of the header up, as a verifier takes a repeated name from the bottom up.
 * The names in `oversign` are added once more to h=; a verifier finds no instance left for
 * them, hashes nothing, and the signature breaks if such a field is added later (5.4.2).
 */
export function selectSignedFields(headers: readonly HeaderField[], sign: readonly string[], oversign: readonly string[] = []): SignedFields {
  const wanted = new Set(sign.map((name) => lowerAscii(trimWsp(name))));
  const fields: HeaderField[] = [];
  for (let i = headers.length - 1; i >= 0; i--) {
    if (wanted.has(headers[i].key)) fields.push(headers[i]);
  }
  return { fields, names: [...fields.map((f) => f.casedKey), ...oversign] };
}

export interface SignatureTags {
  /** a=, e.g. rsa-sha256, ed25519-sha256 */
  algorithm: string;
  /** c=, e.g. relaxed/relaxed */
  canonicalization: string;
  /** d= */
  domain: string;
  /** h=, as names; written joined by ": " */
  headers: readonly string[];
  /** s= */
  selector: string;
  /** t=, seconds since the epoch */
  timestamp: number;
  /** bh=, base64 */
  bodyHash: string;
}

/** A d= or s= value: a DNS name, its non-ASCII labels as A-labels; null when it cannot be one. */
export function dnsTagValue(name: string): string | null {
  const ascii = name.split('.').map((label) => (/[^\x00-\x7f]/.test(label) ? domainToASCII(label.normalize('NFC').toLowerCase()) : label)).join('.');
  return /^[\x21-\x3a\x3c-\x7e]+$/.test(ascii) && !ascii.split('.').includes('') ? ascii : null;
}

/**
 * The DKIM-Signature field with signature `b` (base64; '' for the copy that is hashed),
 * without the final CRLF. Tags in mailauth's order: v a c d h q s t bh b. With `folded`, the
 * b= value is cut into 75 character pieces and the field is folded (CRLF + space) at the
 * last space before column 76, as mailauth (libmime.foldLines) did.
 */
export function formatSignatureField(tags: SignatureTags, b: string, folded = true): string {
  const d = dnsTagValue(tags.domain);
  const s = dnsTagValue(tags.selector);
  if (d === null || s === null) throw new Error(`"${d === null ? tags.domain : tags.selector}" cannot be a DKIM ${d === null ? 'd=' : 's='} value`);
  const bTag = folded ? chunk(`b=${b}`, 75).join(' ') : `b=${b}`;
  const field = `DKIM-Signature: v=1; a=${tags.algorithm}; c=${tags.canonicalization}; d=${d}; h=${tags.headers.join(': ')}; ` +
    `q=dns/txt; s=${s}; t=${tags.timestamp}; bh=${tags.bodyHash}; ${bTag}`;
  return folded ? fold(field, 76) : field;
}

/**
 * What the signature covers for the DKIM-Signature field itself (RFC 6376 3.7): the field
 * relaxed-canonicalized with an empty b= and without a CRLF after it. Folding and the spaces
 * in b= only add whitespace, which the canonicalization takes out again, so the unfolded
 * field gives the same bytes as the folded one that is sent.
 */
export function canonicalSignatureField(tags: SignatureTags): string {
  return relaxedField(formatSignatureField(tags, '', false));
}

function chunk(s: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

const isWsp = (c: number) => c === 0x20 || c === 0x09;

/**
 * Folds a one-line field: while what is left is `width` characters or more, the line ends
 * before the last run of whitespace within the first `width` characters, so that the next
 * line starts with it (a fold is CRLF + WSP, RFC 5322 2.2.3). A word longer than that is
 * kept whole, up to the whitespace after it.
 */
export function fold(text: string, width: number): string {
  const lines: string[] = [];
  let pos = 0;
  while (text.length - pos >= width) {
    let cut = pos + width;
    while (cut > pos && !isWsp(text.charCodeAt(cut - 1))) cut--; // after the last WSP...
    while (cut > pos && isWsp(text.charCodeAt(cut - 1))) cut--; // ...back to the start of its run
    if (cut === pos) {
      // no whitespace but at the start: keep the word whole
      cut = pos + width;
      while (cut < text.length && !isWsp(text.charCodeAt(cut))) cut++;
    }
    lines.push(text.slice(pos, cut));
    pos = cut;
  }
  if (pos < text.length) lines.push(text.slice(pos));
  return lines.join('\r\n');
}
