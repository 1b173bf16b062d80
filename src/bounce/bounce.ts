// Queues a DSN for recipients of a spooled message: the report is built (dsn.ts), signed
// when the relay has a DKIM key for its HELO name's domain (or a parent domain of it, which
// DMARC relaxed alignment accepts), and committed to the spool like any accepted message,
// so it is as durable as the mail it reports on. Never for a message with the null sender.
import { parseHeaderFields } from '../dkim/header-fields';
import { KeyStore } from '../dkim/key-store';
import { BodyHash, signHeaders } from '../dkim/signer';
import { Logger } from '../log';
import { Spool, SpoolEnvelope } from '../spool/spool';
import { buildDsn, DsnRecipient } from './dsn';

export interface BounceContext {
  spool: Spool;
  keys: KeyStore;
  heloName: string;
  log: Logger;
  /** For delay notices: how long the relay keeps trying (ms from acceptance). */
  expireMs?: number;
}

/** The domains a DSN from MAILER-DAEMON@heloName may be signed as, most specific first. */
export function signingDomainsFor(heloName: string): string[] {
  const labels = heloName.toLowerCase().replace(/\.$/, '').split('.');
  const out: string[] = [];
  for (let i = 0; i + 2 <= labels.length; i++) out.push(labels.slice(i).join('.'));
  return out;
}

/**
 * DKIM signatures for a message the relay writes itself (a bounce, a TLS report), From an
 * address at its HELO name: made with the key of the HELO name's domain or the nearest
 * parent domain that has one; none when there is no such key. `header` ends with the blank line.
 */
export async function signAsRelay(header: Buffer, body: Buffer, keyStore: KeyStore, heloName: string): Promise<{ dkimSignatures: string; signing?: SpoolEnvelope['signing'] }> {
  for (const domain of signingDomainsFor(heloName)) {
    const keys = keyStore.signingKeys(domain);
    if (!keys.length) continue;
    const hash = new BodyHash();
    hash.update(body);
    const parsed = parseHeaderFields(header.subarray(0, header.length - 2));
    return { dkimSignatures: await signHeaders(parsed, hash.digest(), keys), signing: { domain, selectors: keys.map((k) => k.selector) } };
  }
  return { dkimSignatures: '' };
}

/**
 * Commits a DSN about `recipients` of `original` to the spool and returns its envelope (to
 * be handed to the queue), or null when none is due (null sender).
 */
export async function queueBounce(
  original: SpoolEnvelope,
  recipients: DsnRecipient[],
  kind: 'failed' | 'delayed',
  ctx: BounceContext
): Promise<SpoolEnvelope | null> {
  if (!original.sender || original.dsn || !recipients.length) return null;
  let originalHeaders: Buffer;
  try {
    originalHeaders = Buffer.concat([await ctx.spool.readSignatures(original.id), await ctx.spool.readHeaders(original.id)]);
  } catch {
    originalHeaders = Buffer.from(`X-Note: the original message ${original.id} is no longer in the spool\r\n`);
  }
  const receivedAt = Date.parse(original.receivedAt);
  const { header, body } = buildDsn({
    kind,
    reportingMta: ctx.heloName,
    to: original.sender,
    queueId: original.id,
    arrivalDate: new Date(receivedAt),
    recipients,
    originalHeaders,
    expiresAt: ctx.expireMs ? new Date(receivedAt + ctx.expireMs) : undefined,
  });

  const { dkimSignatures, signing } = await signAsRelay(header, body, ctx.keys, ctx.heloName);

  const writer = ctx.spool.createWriter();
  try {
    await writer.write(header);
    await writer.write(body);
    const now = Date.now();
    const envelope = await writer.commit({
      receivedAt: new Date(now).toISOString(),
      sender: '',
      recipients: [{ address: original.sender, status: 'queued', attempts: 0, nextAttemptAt: now }],
      dkimSignatures,
      client: { address: 'local' },
      signing,
      dsn: kind,
    });
    ctx.log.info({
      id: envelope.id, original: original.id, to: original.sender, kind,
      recipients: recipients.map((r) => r.address), signed: signing?.domain ?? null,
    }, kind === 'failed' ? 'bounce queued' : 'delay notice queued');
    return envelope;
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
