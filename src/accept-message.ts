// Accepting one message, from the bytes of DATA to a signed message in the spool:
//   line endings to CRLF -> header section checked (policy) and completed (Date,
//   Message-ID) -> body streamed to the spool file while its DKIM hash is computed ->
//   header signed -> spool commit (fsync). Only then does the client hear 250.
// Only the header section is buffered here; the spool writer holds a small message in
// memory until its commit and streams a large one to disk (src/spool/spool.ts).
// When the message is refused, the rest of DATA is still read (the client is mid-transfer)
// and nothing of it stays on disk.
import crypto from 'node:crypto';
import { parseHeaderFields } from './dkim/header-fields';
import { HeaderCollector, HeaderSection } from './header-section';
import { KeyStore } from './dkim/key-store';
import { BodyHash, signHeaders, SigningError } from './dkim/signer';
import { Logger } from './log';
import { checkFieldSyntax, checkHeaders, rfc5322Date } from './policy/header-rules';
import { Rejection } from './policy/rejection';
import { checkAuthorFields, DisplayNamePolicy, SenderIdentity } from './policy/sender-domains';
import { MessageWriter, Spool, SpoolEnvelope, SpoolError } from './spool/spool';
import { receivedField, ReceivedInfo } from './submission/received-field';

export interface AcceptLimits {
  maxLineLength: number;
  maxHeaderSize: number;
  maxSize: number;
}

export interface AcceptContext {
  spool: Spool;
  keys: KeyStore;
  log: Logger;
  limits: AcceptLimits;
  unsignedPolicy: 'refuse' | 'relay';
  /** Whether a display name may show an address of a domain the user may not send as. */
  displayNameAddresses: DisplayNamePolicy;
  /** Host name used in Message-IDs the relay adds. */
  hostname: string;
  /** Told when DKIM signing fails (metrics). */
  onSigningFailure?: (domain: string) => void;
}

export interface IncomingMessage {
  sender: string;
  recipients: string[];
  client: { address: string; user?: string };
  identity: SenderIdentity;
  /** MAIL FROM parameters the client declared; kept in the envelope for delivery. */
  declared?: { body8bit: boolean; smtputf8: boolean };
  /** The session for the Received field; without it none is added. */
  received?: ReceivedInfo;
  /** Set by smtp-server when the message went over the size limit. */
  sizeExceeded?: () => boolean;
}

const CR = Buffer.from('\r');
const CRLF = Buffer.from('\r\n');

/**
 * Makes every line ending CRLF (a bare LF or bare CR becomes CRLF), so the bytes signed are
 * the bytes sent, and measures the longest line, across chunk boundaries. A CR at the end
 * of a chunk is held back until the next chunk shows whether an LF follows it.
 */
export class LineEndings {
  private heldCr = false;
  /** Bytes of the current (unfinished) line in earlier chunks. */
  private carried = 0;
  longestLine = 0;

  normalize(input: Buffer): Buffer {
    let chunk = this.heldCr ? Buffer.concat([CR, input]) : input;
    this.heldCr = chunk.length > 0 && chunk[chunk.length - 1] === 0x0d;
    if (this.heldCr) chunk = chunk.subarray(0, chunk.length - 1);
    const out = this.fixEndings(chunk);
    this.measure(out);
    return out;
  }

  /** The held-back CR, if the message ended right after it. */
  flush(): Buffer {
    if (!this.heldCr) return Buffer.alloc(0);
    this.heldCr = false;
    this.measure(CRLF);
    return CRLF;
  }

  private fixEndings(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    let copied = 0;
    let cr = chunk.indexOf(0x0d);
    let lf = chunk.indexOf(0x0a);
    while (cr !== -1 || lf !== -1) {
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        if (lf === cr + 1) {
          // a proper CRLF (a CR ending the chunk was held back, so cr + 1 exists)
          cr = chunk.indexOf(0x0d, lf + 1);
          lf = chunk.indexOf(0x0a, lf + 1);
          continue;
        }
        parts.push(chunk.subarray(copied, cr), CRLF); // bare CR
        copied = cr + 1;
        cr = chunk.indexOf(0x0d, cr + 1);
      } else {
        parts.push(chunk.subarray(copied, lf), CRLF); // bare LF
        copied = lf + 1;
        lf = chunk.indexOf(0x0a, lf + 1);
      }
    }
    if (!parts.length) return chunk;
    parts.push(chunk.subarray(copied));
    return Buffer.concat(parts);
  }

  private measure(out: Buffer): void {
    let start = 0;
    for (let lf = out.indexOf(0x0a); lf !== -1; lf = out.indexOf(0x0a, lf + 1)) {
      const length = this.carried + (lf - start) - 1; // without the CR before the LF
      if (length > this.longestLine) this.longestLine = length;
      this.carried = 0;
      start = lf + 1;
    }
    this.carried += out.length - start;
    if (this.carried > this.longestLine) this.longestLine = this.carried;
  }
}

export async function acceptMessage(input: AsyncIterable<Buffer>, message: IncomingMessage, ctx: AcceptContext): Promise<SpoolEnvelope> {
  let writer: MessageWriter | null = null;
  let rejection: Rejection | null = null;
  const refuse = (r: Rejection) => {
    if (!rejection) rejection = r;
  };
  try {
    writer = ctx.spool.createWriter();
  } catch (err) {
    refuse(spoolRejection(err));
  }

  const lines = new LineEndings();
  const bodyHash = new BodyHash();
  const header = new HeaderCollector(ctx.limits.maxHeaderSize);
  let inBody = false;
  let signer: ((hash: string) => Promise<string>) | null = null;
  let signing: SpoolEnvelope['signing'];

  const write = async (chunk: Buffer) => {
    if (!writer || rejection) return;
    try {
      await writer.write(chunk);
    } catch (err) {
      refuse(spoolRejection(err));
    }
  };

  // Called once with the complete header section (ending with the blank line, if any).
  const onHeaderSection = async (section: Buffer, bodyStart: Buffer) => {
    const prepared = prepareHeaders(section, message, ctx, writer?.id);
    signer = prepared.sign;
    signing = prepared.signing;
    await write(prepared.header);
    if (bodyStart.length) {
      bodyHash.update(bodyStart);
      await write(bodyStart);
    }
  };

  // Any failure below, including the client going away mid-DATA, removes the partial file.
  try {
    for await (const raw of input) {
      if (rejection) continue; // drain what the client still sends
      if (message.sizeExceeded?.()) {
        refuse(new Rejection(552, '5.3.4', `message exceeds the size limit of ${ctx.limits.maxSize} bytes; send it smaller or raise submission.maxSize (RELAY_MAX_SIZE)`));
        continue;
      }
      const chunk = lines.normalize(Buffer.isBuffer(raw) ? raw : Buffer.from(raw));
      try {
        if (inBody) {
          bodyHash.update(chunk);
          await write(chunk);
          continue;
        }
        const found = header.push(chunk);
        if (!found) continue;
        inBody = true;
        await onHeaderSection(found.section, found.bodyStart);
      } catch (err) {
        if (err instanceof Rejection) refuse(err);
        else throw err;
      }
    }

    const tail = lines.flush();
    let headerAtEnd: HeaderSection | null = null;
    if (tail.length && !rejection) {
      if (inBody) {
        bodyHash.update(tail);
        await write(tail);
      } else {
        try {
          headerAtEnd = header.push(tail);
        } catch (err) {
          if (err instanceof Rejection) refuse(err);
          else throw err;
        }
      }
    }
    if (!rejection && message.sizeExceeded?.()) {
      refuse(new Rejection(552, '5.3.4', `message exceeds the size limit of ${ctx.limits.maxSize} bytes; send it smaller or raise submission.maxSize (RELAY_MAX_SIZE)`));
    }
    if (!rejection && !inBody) {
      try {
        // No blank line (unless the held-back CR completed it): the message is all header.
        const { section, bodyStart } = headerAtEnd ?? header.finish();
        await onHeaderSection(section, bodyStart);
      } catch (err) {
        if (err instanceof Rejection) refuse(err);
        else throw err;
      }
    }
    if (!rejection && lines.longestLine > ctx.limits.maxLineLength) {
      refuse(new Rejection(550, '5.6.0',
        `the message has a line of ${lines.longestLine} octets; the limit is ${ctx.limits.maxLineLength} (RFC 5322 allows 998): ` +
        'encode long body lines as quoted-printable or base64'));
    }
    if (rejection) throw rejection;
    let dkimSignatures = '';
    if (signer) {
      try {
        dkimSignatures = await (signer as (hash: string) => Promise<string>)(bodyHash.digest());
      } catch (err) {
        if (err instanceof SigningError) {
          ctx.log.error({ err: err.message }, 'DKIM signing failed');
          ctx.onSigningFailure?.(signing?.domain ?? '');
          throw new Rejection(451, '4.7.0', `the message could not be signed (${err.message}); try again later`);
        }
        throw err;
      }
    }
    const now = Date.now();
    const envelope = await (writer as MessageWriter).commit({
      receivedAt: new Date(now).toISOString(),
      sender: message.sender,
      recipients: message.recipients.map((address) => ({ address, status: 'queued', attempts: 0, nextAttemptAt: now })),
      dkimSignatures,
      client: message.client,
      signing,
      ...(message.declared?.body8bit || message.declared?.smtputf8 ? {
        declared: {
          ...(message.declared.body8bit ? { body8bit: true } : {}),
          ...(message.declared.smtputf8 ? { smtputf8: true } : {}),
        },
      } : {}),
    }).catch((err) => {
      throw spoolRejection(err);
    });
    return envelope;
  } catch (err) {
    await writer?.abort();
    throw err;
  }
}

/**
 * Checks the header section, adds Date and Message-ID when missing and the Received field on
 * top, picks the keys. The signature covers neither Received field nor anything above the
 * client's fields, so the fields added here never break it.
 */
function prepareHeaders(section: Buffer, message: IncomingMessage, ctx: AcceptContext, id?: string) {
  const body = section.subarray(0, section.length - 2); // without the blank line
  checkFieldSyntax(body);
  const received = parseHeaderFields(body);
  const facts = checkHeaders(received);
  checkAuthorFields(message.identity, facts.authors, ctx.displayNameAddresses);

  let added = '';
  if (!facts.hasDate) added += `Date: ${rfc5322Date(new Date())}\r\n`;
  if (!facts.hasMessageId) added += `Message-ID: <${crypto.randomUUID()}@${ctx.hostname}>\r\n`;
  const completed = added ? Buffer.concat([body, Buffer.from(added, 'latin1'), CRLF]) : section;
  // Trace fields go on top (RFC 5321 4.4). utf8: a recipient in the for clause may be an
  // internationalized address (RFC 6532), which only travels with SMTPUTF8.
  const header = message.received
    ? Buffer.concat([Buffer.from(receivedField(message.received, ctx.hostname, { id, recipients: message.recipients }), 'utf8'), completed])
    : completed;

  const keys = ctx.keys.signingKeys(facts.fromDomain);
  if (!keys.length) {
    if (ctx.unsignedPolicy === 'refuse') {
      throw new Rejection(550, '5.7.1', ctx.keys.whyUnsigned(facts.fromDomain));
    }
    ctx.log.warn({ domain: facts.fromDomain }, `relaying unsigned mail: no DKIM key for ${facts.fromDomain}`);
    return { header, sign: null, signing: undefined };
  }
  const parsed = added ? parseHeaderFields(completed.subarray(0, completed.length - 2)) : received;
  return {
    header,
    sign: (bodyHash: string) => signHeaders(parsed, bodyHash, keys),
    signing: { domain: facts.fromDomain, selectors: keys.map((k) => k.selector) },
  };
}

function spoolRejection(err: unknown): Rejection {
  if (err instanceof Rejection) return err;
  const code = err instanceof SpoolError ? err.code : (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new Rejection(452, '4.3.1', 'the relay\'s spool is full; try again later');
  }
  return new Rejection(452, '4.3.1', `the relay cannot write its spool (${code ?? 'error'}); try again later`);
}
