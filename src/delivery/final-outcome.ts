// What happened to a message that leaves the queue, as one journal record (spool/journal.ts):
// per recipient its final status, the host, IP, time and reply of its last attempt with what
// that reply means (replies/), and the bounce that told the sender. Built from the envelope
// as the queue runner (or `queue delete` on a stopped relay) holds it at that moment.
import { verdictOf } from '../replies/verdict';
import { FinalStatus, JournalRecipient, JournalRecord } from '../spool/journal';
import { AttemptRecord, RecipientState, SpoolEnvelope } from '../spool/spool';

/** The reply given to recipients still queued when their message is deleted. */
export const DELETED_REPLY = 'deleted from the queue by the administrator';

/** History lines kept in a record (the spool keeps up to 20; the last few tell the story). */
const HISTORY_KEPT = 10;
/** Longest reply text kept (replies come from remote servers; the transport keeps 500). */
const REPLY_LIMIT = 1000;

const clip = (text: string) => (text.length > REPLY_LIMIT ? `${text.slice(0, REPLY_LIMIT)}...` : text);

function statusOf(r: RecipientState): FinalStatus {
  if (r.status === 'delivered') return 'delivered';
  if (r.lastReply === DELETED_REPLY) return 'deleted';
  return r.expired ? 'expired' : 'failed';
}

/** The last history line about this recipient that was an attempt (not a deletion). */
function lastAttempt(history: AttemptRecord[], address: string): AttemptRecord | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const h = history[i];
    if (h.outcome !== 'deleted' && h.outcome !== 'bounced' && h.recipients.includes(address)) return h;
  }
  return undefined;
}

function recipientOutcome(r: RecipientState, history: AttemptRecord[]): JournalRecipient {
  const status = statusOf(r);
  const attempt = lastAttempt(history, r.address);
  const out: JournalRecipient = { address: r.address, status, attempts: r.attempts };
  const at = r.lastAttemptAt ?? attempt?.at;
  if (at !== undefined) out.at = new Date(at).toISOString();
  const host = r.remoteHost ?? attempt?.host;
  if (host) out.host = host;
  if (attempt?.ip && (!host || attempt.host === host)) out.ip = attempt.ip;
  if (status === 'deleted') {
    // the last attempt's words (if any) tell why it was still queued
    out.reply = attempt ? `${DELETED_REPLY}; last reply: ${clip(attempt.reply)}` : DELETED_REPLY;
    out.class = 'deleted';
    out.explanation = 'An administrator deleted the message from the queue (dkim-relay queue delete) before this recipient was delivered.';
  } else {
    const reply = r.lastReply ?? attempt?.reply;
    if (reply !== undefined) {
      out.reply = clip(reply);
      const known = attempt && attempt.reply === reply && attempt.class ? attempt : null;
      const verdict = known ? { class: known.class!, explanation: known.explanation!, fix: known.fix } : verdictOf(reply, host);
      out.class = verdict.class;
      out.explanation = verdict.explanation;
      if (verdict.fix) out.fix = verdict.fix;
      if (status === 'expired') {
        out.class = 'expired';
        out.explanation = `The relay gave up: the recipient was still not delivered when delivery.retryExpire (RELAY_RETRY_EXPIRE) ran out. The last reply meant: ${verdict.explanation}`;
      }
    }
  }
  if (r.bounceId) out.bounceId = r.bounceId;
  return out;
}

/** The journal record of `envelope`, which leaves the queue now; `deleted`: by `queue delete`. */
export function finalOutcome(envelope: SpoolEnvelope, deleted: boolean, now = Date.now()): JournalRecord {
  const history = envelope.history ?? [];
  const recipients = envelope.recipients.map((r) => recipientOutcome(r, history));
  const delivered = recipients.filter((r) => r.status === 'delivered').length;
  const outcome: JournalRecord['outcome'] = deleted ? 'deleted'
    : delivered === recipients.length ? 'delivered' : delivered === 0 ? 'failed' : 'partly-delivered';
  const bounces = [...new Set(recipients.map((r) => r.bounceId).filter((id): id is string => !!id))];
  const unreported = recipients.filter((r) => r.status !== 'delivered' && !r.bounceId);
  let noBounce: string | undefined;
  if (unreported.length) {
    if (!envelope.sender || envelope.dsn) noBounce = 'the message has the null sender (a bounce itself): no bounce is sent about it';
    else if (unreported.every((r) => r.status === 'deleted')) noBounce = 'deleted without --bounce';
    else noBounce = 'no bounce was queued';
  }
  // id first: readers find a message's line by its start (JournalReader.find)
  return {
    id: envelope.id,
    finishedAt: new Date(now).toISOString(),
    outcome,
    receivedAt: envelope.receivedAt,
    sender: envelope.sender,
    size: envelope.size,
    client: envelope.client,
    ...(envelope.dsn ? { dsn: envelope.dsn } : {}),
    recipients,
    bounces,
    ...(noBounce ? { noBounce } : {}),
    history: history.slice(-HISTORY_KEPT).map((h) => ({ ...h, reply: clip(h.reply) })),
  };
}
