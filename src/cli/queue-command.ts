// `dkim-relay queue`: the spool for people. list and show read the spool files directly
// (every file is replaced by rename, so a running relay never shows half a state). retry and
// delete change the queue: while a relay holds the spool lock they are handed to it as
// request files (<dataDir>/control/), which it applies within a second, so only one process
// ever writes the spool; with no relay running they edit the spool themselves, under the lock.
// show of a message no longer queued reads the journal of final outcomes (spool/journal.ts),
// which needs no lock either. Text from outside (addresses, replies, headers) is printed
// without its control characters (printable.ts).
// list streams: one message read and printed at a time, so a queue of a million prints
// without holding a million envelopes (only their names, to print them in order).
import fsp from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { queueBounce } from '../bounce/bounce';
import { CliContext, CliError, Command, UsageError } from '../cli-context';
import { KeyStore } from '../dkim/key-store';
import { heloName } from '../identity/helo-name';
import { DELETED_REPLY, finalOutcome } from '../delivery/final-outcome';
import { createLogger } from '../log';
import { JOURNAL_FLUSH_MS, JournalReader, JournalRecord, JournalWriter } from '../spool/journal';
import { ControlReply, ControlRequest, sendControlRequest } from '../spool/control';
import { Spool, SpoolEnvelope } from '../spool/spool';
import { SpoolLock } from '../spool/spool-lock';
import { printable, printableLines, terminalJson } from './printable';

const USAGE = [
  'usage: dkim-relay queue list [--json]',
  '       dkim-relay queue show ID [--json]',
  '       dkim-relay queue retry ID|--all [--json]',
  '       dkim-relay queue delete ID [--bounce] [--json]',
].join('\n');

export const queueCommand: Command = async (args, ctx) => {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args,
        options: { json: { type: 'boolean' }, all: { type: 'boolean' }, bounce: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
    } catch (err) {
      throw new UsageError(`${(err as Error).message}\n${USAGE}`);
    }
  })();
  const [action, id, ...rest] = positionals;
  if (rest.length) throw new UsageError(`unexpected "${rest.join(' ')}"\n${USAGE}`);
  const spool = new Spool(ctx.config.dataDir);
  const json = !!values.json;
  switch (action) {
    case 'list':
      if (id) throw new UsageError(`queue list takes no ID\n${USAGE}`);
      return list(spool, ctx, json);
    case 'show':
      if (!id) throw new UsageError(`queue show needs a message ID (see queue list)\n${USAGE}`);
      return show(spool, id, ctx, json);
    case 'retry':
      if (!id === !values.all) throw new UsageError(`queue retry needs a message ID or --all, not both\n${USAGE}`);
      return change(spool, { action: 'retry', id, all: !!values.all }, ctx, json);
    case 'delete':
      if (!id) throw new UsageError(`queue delete needs a message ID (see queue list)\n${USAGE}`);
      return change(spool, { action: 'delete', id, bounce: !!values.bounce }, ctx, json);
    default:
      throw new UsageError(`${action ? `unknown queue action "${action}"` : 'queue needs an action'}\n${USAGE}`);
  }
};

function age(receivedAt: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(receivedAt)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function nextAttempt(envelope: SpoolEnvelope): number | null {
  const queued = envelope.recipients.filter((r) => r.status === 'queued');
  return queued.length ? Math.min(...queued.map((r) => r.nextAttemptAt)) : null;
}

function summary(e: SpoolEnvelope) {
  const next = nextAttempt(e);
  return {
    id: e.id,
    receivedAt: e.receivedAt,
    age: age(e.receivedAt),
    sender: e.sender,
    size: e.size,
    dsn: e.dsn ?? null,
    attempts: Math.max(0, ...e.recipients.map((r) => r.attempts)),
    nextAttemptAt: next === null ? null : new Date(next).toISOString(),
    recipients: e.recipients.map((r) => ({
      address: r.address, status: r.status, attempts: r.attempts, lastReply: r.lastReply ?? null,
      nextAttemptAt: r.status === 'queued' ? new Date(r.nextAttemptAt).toISOString() : null,
    })),
  };
}

async function list(spool: Spool, ctx: CliContext, json: boolean): Promise<number> {
  let count = 0;
  const now = Date.now();
  for await (const e of spool.envelopes()) {
    const s = summary(e);
    if (json) {
      // a JSON array written element by element, as JSON.stringify(all, null, 2) would write it
      const element = terminalJson(s).replace(/\n/g, '\n  ');
      await write(ctx, `${count ? ',\n' : '[\n'}  ${element}`);
    } else {
      const next = nextAttempt(e);
      const when = next === null ? '-' : next <= now ? 'now' : `in ${age(new Date(now - (next - now)).toISOString(), now)}`;
      await write(ctx, `${e.id}  ${s.age.padStart(4)}  ${printable(e.sender) || '<>'}${e.dsn ? ` (${e.dsn === 'failed' ? 'bounce' : 'delay notice'})` : ''}  attempts ${s.attempts}  next ${when}\n` +
        e.recipients.map((r) => `    ${printable(r.address)}  ${r.status}  attempts ${r.attempts}${r.lastReply ? `  ${printable(r.lastReply)}` : ''}\n`).join(''));
    }
    count++;
  }
  if (json) ctx.stdout.write(count ? '\n]\n' : '[]\n');
  else ctx.stdout.write(count ? `${count} message(s)\n` : 'the queue is empty\n');
  return 0;
}

/** Writes, waiting when the reader is slower (a pipe to `less`), so that a long list is not buffered whole. */
function write(ctx: CliContext, text: string): Promise<void> | void {
  if (ctx.stdout.write(text)) return;
  const stream = ctx.stdout as NodeJS.WritableStream;
  if (typeof stream.once !== 'function') return;
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}

async function show(spool: Spool, id: string, ctx: CliContext, json: boolean): Promise<number> {
  const envelope = await spool.read(id);
  if (!envelope) return showFinished(id, ctx, json);
  let headers = '';
  try {
    headers = (await spool.readHeaders(id)).toString('utf8');
  } catch {
    headers = '(the message file is gone: it was just delivered or deleted)\n';
  }
  if (json) {
    ctx.stdout.write(terminalJson({ ...summary(envelope), client: envelope.client, signing: envelope.signing ?? null, history: envelope.history ?? [], headers }) + '\n');
    return 0;
  }
  const s = summary(envelope);
  const p = printable;
  const out = [
    `id:          ${envelope.id}`,
    `received:    ${envelope.receivedAt} (${s.age} ago) from ${p(envelope.client.address)}${envelope.client.user ? ` (user ${p(envelope.client.user)})` : ''}`,
    `sender:      ${p(envelope.sender) || '<> (null sender)'}`,
    `size:        ${envelope.size} bytes`,
    `signed:      ${envelope.signing ? `${envelope.signing.domain} (${envelope.signing.selectors.join(', ')})` : 'no'}`,
    'recipients:',
    ...envelope.recipients.map((r) => `  ${p(r.address)}  ${r.status}  attempts ${r.attempts}` +
      `${r.status === 'queued' ? `  next ${new Date(r.nextAttemptAt).toISOString()}` : ''}${r.lastReply ? `\n    last reply: ${p(r.lastReply)}` : ''}`),
    'history:',
    ...historyLines(envelope.history ?? []),
    'headers:',
    printableLines(headers.replace(/\r\n/g, '\n').replace(/\n$/, '')).split('\n').map((l) => `  ${l}`).join('\n'),
  ];
  ctx.stdout.write(out.join('\n') + '\n');
  return 0;
}

function historyLines(history: { at: number; outcome: string; recipients: string[]; host?: string; ip?: string; reply: string; class?: string; explanation?: string; fix?: string }[]): string[] {
  if (!history.length) return ['  (no attempt yet)'];
  const p = printable;
  return history.map((h) => `  ${timeOf(h.at)}  ${p(h.outcome)}  ${(Array.isArray(h.recipients) ? h.recipients : []).map(p).join(', ')}` +
    `${h.host ? `  ${p(h.host)}${h.ip ? ` [${p(h.ip)}]` : ''}` : ''}  ${p(h.reply)}` +
    `${h.class ? `\n    ${p(h.class)}: ${p(h.explanation ?? '')}${h.fix ? ` Fix: ${p(h.fix)}` : ''}` : ''}`);
}

/** An attempt's time (epoch ms) as ISO; what a damaged record holds instead, made printable. */
function timeOf(at: unknown): string {
  return typeof at === 'number' && Number.isFinite(at) ? new Date(at).toISOString() : printable(at);
}

/** A message not in the queue: what the journal of final outcomes says happened to it. */
async function showFinished(id: string, ctx: CliContext, json: boolean): Promise<number> {
  const days = ctx.config.queue.journalDays;
  const reader = new JournalReader(ctx.config.dataDir);
  let record = await reader.find(id);
  // A running relay writes the journal in batches (JOURNAL_FLUSH_MS): a message that just left
  // the queue may not be in it yet. (Whether a relay runs is not asked: that probe would take
  // the spool lock for a moment, and reading needs no lock.)
  if (!record && days > 0) {
    const asked = Date.now();
    await new Promise((r) => setTimeout(r, 2 * JOURNAL_FLUSH_MS));
    record = await reader.find(id, asked - 60_000); // only the newest records need a second look
  }
  if (!record) {
    const kept = days > 0
      ? `the journal of final outcomes keeps messages that left the queue for ${days} day(s) (queue.journalDays, RELAY_JOURNAL_DAYS)`
      : 'the journal of final outcomes is off (queue.journalDays = 0, RELAY_JOURNAL_DAYS), so messages that left the queue are not remembered';
    throw new CliError(`no message ${printable(id)} in the queue (${ctx.config.dataDir}/spool) or in the journal (${ctx.config.dataDir}/journal): ` +
      `${kept}; see \`dkim-relay queue list\` for the queued ones`);
  }
  if (json) {
    ctx.stdout.write(terminalJson({ ...record, queued: false, source: 'journal' }) + '\n');
    return 0;
  }
  ctx.stdout.write(finishedText(record).join('\n') + '\n');
  return 0;
}

const OUTCOME_WORDS: Record<JournalRecord['outcome'], string> = {
  delivered: 'delivered to every recipient',
  failed: 'not delivered (failed)',
  'partly-delivered': 'delivered to some recipients, not to others',
  deleted: 'deleted from the queue by the administrator',
};

function finishedText(record: JournalRecord): string[] {
  const p = printable;
  const bounce = Array.isArray(record.bounces) && record.bounces.length
    ? `queued as ${record.bounces.map(p).join(', ')} to ${p(record.sender)}`
    : record.noBounce ? `none: ${p(record.noBounce)}` : 'none needed';
  return [
    `id:          ${p(record.id)}`,
    `status:      no longer queued: ${Object.hasOwn(OUTCOME_WORDS, record.outcome) ? OUTCOME_WORDS[record.outcome] : p(record.outcome)}`,
    `finished:    ${p(record.finishedAt)}`,
    `received:    ${p(record.receivedAt)} from ${p(record.client?.address ?? '?')}${record.client?.user ? ` (user ${p(record.client.user)})` : ''}`,
    `sender:      ${p(record.sender) || '<> (null sender)'}${record.dsn ? ` (a ${record.dsn === 'failed' ? 'bounce' : 'delay notice'} made by the relay)` : ''}`,
    `size:        ${p(record.size)} bytes`,
    'recipients:',
    ...record.recipients.flatMap((r) => [
      `  ${p(r.address)}  ${p(r.status)}  attempts ${p(r.attempts)}${r.at ? `  ${p(r.at)}` : ''}${r.host ? `  ${p(r.host)}${r.ip ? ` [${p(r.ip)}]` : ''}` : ''}`,
      ...(r.reply ? [`    reply: ${p(r.reply)}`] : []),
      ...(r.class ? [`    ${p(r.class)}: ${p(r.explanation ?? '')}${r.fix ? ` Fix: ${p(r.fix)}` : ''}`] : []),
      ...(r.bounceId ? [`    bounce: ${p(r.bounceId)}`] : []),
    ]),
    `bounce:      ${bounce}`,
    'history:',
    ...historyLines(record.history ?? []),
    '(from the journal of final outcomes; the message itself is no longer kept)',
  ];
}

async function change(spool: Spool, request: ControlRequest, ctx: CliContext, json: boolean): Promise<number> {
  let reply: ControlReply;
  // The lock says whether a relay runs (in this PID namespace or another, on this data dir).
  // Taken, it is kept for the edit, so no relay can start in between; a relay starting right
  // now waits for it (Spool.lock).
  if (await spool.tryLock(`dkim-relay queue ${request.action}`)) {
    reply = await changeOffline(spool, request, ctx);
  } else {
    reply = await sendControlRequest(ctx.config.dataDir, request).catch((err: Error) => {
      throw new CliError(`${err.message}; is the relay that holds the spool (${SpoolLock.describeHolder(ctx.config.dataDir)}) stuck?`);
    });
  }
  if (json) ctx.stdout.write(JSON.stringify(reply) + '\n');
  else (reply.ok ? ctx.stdout : ctx.stderr).write(`${reply.ok ? '' : 'dkim-relay: '}${reply.message}\n`);
  return reply.ok ? 0 : 1;
}

/** No relay runs: edit the spool directly, holding its lock (taken by the caller) meanwhile. */
async function changeOffline(spool: Spool, request: ControlRequest, ctx: CliContext): Promise<ControlReply> {
  try {
    if (request.action === 'retry') {
      const one = request.all ? null : await spool.read(request.id ?? '');
      if (!request.all && !one) return { ok: false, message: `no message ${request.id} in the queue` };
      const targets = one ? [one] : spool.envelopes();
      const now = Date.now();
      const ids: string[] = [];
      for await (const e of targets) {
        const queued = e.recipients.filter((r) => r.status === 'queued');
        if (!queued.length) continue;
        for (const r of queued) r.nextAttemptAt = now;
        await spool.update(e);
        ids.push(e.id);
      }
      return { ok: true, ids, message: `${ids.length} message(s) will be tried as soon as the relay runs (it is not running now)` };
    }
    const envelope = await spool.read(request.id);
    if (!envelope) return { ok: false, message: `no message ${request.id} in the queue` };
    const waiting = envelope.recipients.filter((r) => r.status === 'queued' || (r.status === 'failed' && !r.notified));
    for (const r of envelope.recipients) {
      if (r.status !== 'queued') continue;
      r.status = 'failed';
      r.lastReply = DELETED_REPLY;
    }
    if (request.bounce) {
      await fsp.mkdir(spool.tmpDir, { recursive: true, mode: 0o700 });
      const log = createLogger('silent');
      const dsn = await queueBounce(envelope, waiting.map((r) => ({
        address: r.address, action: 'failed' as const,
        reply: r.lastReply ?? 'failed',
        remoteHost: r.remoteHost, lastAttemptAt: r.lastAttemptAt,
      })), 'failed', { spool, keys: new KeyStore(ctx.config.keysDir), heloName: heloName(ctx.config), log });
      if (dsn) for (const r of waiting) r.bounceId = dsn.id;
    }
    // the relay is not running: this process holds the spool lock, and writes the journal line itself
    const journal = new JournalWriter(ctx.config.dataDir, { days: ctx.config.queue.journalDays, maxDayBytes: ctx.config.queue.journalMaxDaySize });
    journal.append(finalOutcome(envelope, true));
    await journal.close();
    await spool.remove(envelope.id);
    return { ok: true, ids: [envelope.id], message: `message ${envelope.id} deleted${request.bounce ? ', its sender gets a bounce at the next start' : ''}` };
  } finally {
    await spool.unlock();
  }
}
